/*
 * ek_supervisor: the accept loop of the blocking models (iterative, thread,
 * process). It waits in poll(2) on the listeners and the signal pipe,
 * admits connections and hands each to the model's start hook; it runs
 * the drain and, at the drain deadline or on a second signal, asks the
 * model to cut what is still open.
 */
#ifndef EK_SUPERVISOR_H
#define EK_SUPERVISOR_H

struct ek_server;
struct ek_transport;

struct ek_supervisor_ops {
    /* Takes an admitted connection (blocking fd). Serves it inline
     * (iterative) or hands it to a thread or child; either way it ends
     * with ek_admit_conn_done. tp: what the listener's connections
     * speak. */
    void (*start)(struct ek_server *srv, void *ctx, int fd,
                  const struct ek_transport *tp);
    /* A SIGCHLD arrived (process model); may be NULL. */
    void (*reap)(struct ek_server *srv, void *ctx);
    /* End every connection still open (drain deadline, forced exit); the
     * supervisor then waits briefly for them to report done. May be NULL
     * when start serves inline. */
    void (*cut)(struct ek_server *srv, void *ctx);
    void *ctx;
};

/* Runs until the server stops. Returns 0, or -errno when it could not go
 * on. */
int ek_supervise(struct ek_server *srv, const struct ek_supervisor_ops *ops);

/* A pipe that becomes readable, for good, when connections must be cut:
 * workers poll its read end beside their socket (ek_echo_blocking's
 * wake_fd), and a single write reaches all of them, threads and forked
 * children alike. */
struct ek_cut_pipe {
    int rd, wr;
};
int ek_cut_pipe_open(struct ek_cut_pipe *p);
void ek_cut_pipe_fire(struct ek_cut_pipe *p);
void ek_cut_pipe_close(struct ek_cut_pipe *p);

#endif
