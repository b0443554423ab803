# For a uring server that hangs in a test (harness.c, report_hung): each
# loop's connections and their engine states, next to the backtraces.
# Threads that are not in a uring loop are skipped (-s).
define echokit_uring_state
  frame function uloop_turn
  set $lp = (struct uloop *)arg
  set $starved = 0
  set $i = 0
  while $i < $lp->base.nslots
    set $u = (struct uconn *)($lp->base.slots + $i * $lp->base.slot_size)
    if $u->c.kind == EK_SLOT_CONN
      printf "  fd %d: state %#x (1 armed, 2 send, 4 paused, 8 starved), conn flags %#x, queued %lu, send bid %d %u/%u\n", $i, $u->state, $u->c.flags, $u->c.queue.len, $u->send_bid, $u->send_done, $u->send_len
      if $u->state & 8
        set $starved = $starved + 1
      end
    end
    set $i = $i + 1
  end
  printf "uring loop %u: %lu conns (above), %u buffers free, %d starved (first in line: fd %d)\n", $lp->base.index, $lp->base.nconns, $lp->bufs_free, $starved, $lp->line_head
end
thread apply all -q -s echokit_uring_state
