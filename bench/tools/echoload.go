// echoload: an independent echo load client, to check `echokit bench`.
//
// Written separately from echokit (Go standard library only, its own
// payloads from math/rand, its own clock and statistics), it runs the
// closed-loop workloads of bench/compare: N connections, each with DEPTH
// messages of SIZE bytes in flight, every echo compared with what was
// sent; or one-way bulk with -stream. It prints one JSON object.
//
// usage: echoload -addr HOST:PORT [-c N] [-s SIZE] [-d DEPTH] [-t SECS]
//
//	[-w SECS] [-stream]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Msgs    int64   `json:"msgs"`
	Seconds float64 `json:"duration_s"`
	MsgsPS  float64 `json:"msgs_per_s"`
	MiBPS   float64 `json:"mib_per_s"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	Errors  int64   `json:"errors"`
}

var (
	measureFrom, measureTo time.Time
	errors                 int64
)

func inWindow(t time.Time) bool { return !t.Before(measureFrom) && t.Before(measureTo) }

// awaitEcho reads the echo of one message, checks it, and records its
// latency when it lands in the window. False (and an error counted) if
// the connection failed or the echo differs.
func awaitEcho(c net.Conn, buf, want []byte, sentAt time.Time,
	lat *[]float64, msgs *int64) bool {
	if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, want) {
		atomic.AddInt64(&errors, 1)
		return false
	}
	if now := time.Now(); inWindow(now) {
		*lat = append(*lat, float64(now.Sub(sentAt).Nanoseconds())/1e3)
		*msgs++
	}
	return true
}

// rr runs one connection's closed loop and returns its latencies (us) and
// echoed messages inside the window.
func rr(addr string, id int64, size, depth int) (lat []float64, msgs int64) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		atomic.AddInt64(&errors, 1)
		return nil, 0
	}
	defer c.Close()
	rng := rand.New(rand.NewSource(id))
	type sent struct {
		data []byte
		at   time.Time
	}
	queue := make([]sent, 0, depth)
	buf := make([]byte, size)
	send := func() bool {
		m := make([]byte, size)
		rng.Read(m)
		queue = append(queue, sent{m, time.Now()})
		_, err := c.Write(m)
		return err == nil
	}
	for i := 0; i < depth; i++ {
		if !send() {
			atomic.AddInt64(&errors, 1)
			return lat, msgs
		}
	}
	for time.Now().Before(measureTo) {
		head := queue[0]
		queue = queue[1:]
		if !awaitEcho(c, buf, head.data, head.at, &lat, &msgs) {
			return lat, msgs
		}
		if !send() {
			atomic.AddInt64(&errors, 1)
			return lat, msgs
		}
	}
	return lat, msgs
}

// paced runs one connection's open loop: message i is due at
// start + phase + i*interval and goes out then (or as soon as the writer
// catches up). Go's timers wake up to a millisecond late, so latency runs
// from the actual send, not the due time: a round trip, not a schedule.
func paced(addr string, id int64, size int, interval, phase time.Duration,
	start time.Time) (lat []float64, msgs int64) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		atomic.AddInt64(&errors, 1)
		return nil, 0
	}
	defer c.Close()
	type sent struct {
		data []byte
		at   time.Time
	}
	inflight := make(chan sent, 1<<16)
	go func() {
		rng := rand.New(rand.NewSource(id))
		defer close(inflight)
		for i := 0; ; i++ {
			due := start.Add(phase + time.Duration(i)*interval)
			if !due.Before(measureTo) {
				return
			}
			time.Sleep(time.Until(due))
			m := make([]byte, size)
			rng.Read(m)
			inflight <- sent{m, time.Now()}
			if _, err := c.Write(m); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, size)
	for s := range inflight {
		if !awaitEcho(c, buf, s.data, s.at, &lat, &msgs) {
			return lat, msgs
		}
	}
	return lat, msgs
}

// stream sends without pause and checks the echo against a second copy of
// the same pseudo-random stream; returns the bytes echoed in the window.
func stream(addr string, id int64, size int) (echoed int64) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		atomic.AddInt64(&errors, 1)
		return 0
	}
	defer c.Close()
	go func() {
		src := rand.New(rand.NewSource(id))
		out := make([]byte, size)
		for time.Now().Before(measureTo) {
			src.Read(out)
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}()
	check := rand.New(rand.NewSource(id))
	in := make([]byte, 65536)
	want := make([]byte, 65536)
	for time.Now().Before(measureTo) {
		n, err := c.Read(in)
		if err != nil {
			atomic.AddInt64(&errors, 1)
			return echoed
		}
		// math/rand's Read is a stream: reading n bytes now continues
		// where the previous call stopped, as on the sending side.
		check.Read(want[:n])
		if !bytes.Equal(in[:n], want[:n]) {
			atomic.AddInt64(&errors, 1)
			return echoed
		}
		if inWindow(time.Now()) {
			echoed += int64(n)
		}
	}
	return echoed
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50000", "echo server")
	conns := flag.Int("c", 50, "connections")
	size := flag.Int("s", 64, "message size")
	depth := flag.Int("d", 1, "messages in flight per connection")
	secs := flag.Float64("t", 2, "measured seconds")
	warm := flag.Float64("w", 0.5, "warm-up seconds")
	bulk := flag.Bool("stream", false, "one-way bulk instead of rr")
	rate := flag.Float64("r", 0, "open loop: messages per second in all")
	flag.Parse()

	start := time.Now()
	measureFrom = start.Add(time.Duration(*warm * float64(time.Second)))
	measureTo = measureFrom.Add(time.Duration(*secs * float64(time.Second)))

	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []float64
	var msgs, echoed int64
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(id int64) {
			defer wg.Done()
			if *bulk {
				atomic.AddInt64(&echoed, stream(*addr, id, *size))
				return
			}
			var lat []float64
			var n int64
			if *rate > 0 {
				interval := time.Duration(float64(*conns) / *rate * 1e9)
				phase := interval * time.Duration(id-1) / time.Duration(*conns)
				lat, n = paced(*addr, id, *size, interval, phase, start)
			} else {
				lat, n = rr(*addr, id, *size, *depth)
			}
			mu.Lock()
			all = append(all, lat...)
			msgs += n
			mu.Unlock()
		}(int64(i + 1))
	}
	wg.Wait()
	sort.Float64s(all)
	r := result{Seconds: *secs, Errors: errors}
	if *bulk {
		r.MiBPS = float64(echoed) / *secs / 1048576
		r.Msgs = echoed / int64(*size)
	} else {
		r.Msgs = msgs
		r.MiBPS = float64(msgs) * float64(*size) / *secs / 1048576
		r.P50 = percentile(all, 0.50)
		r.P99 = percentile(all, 0.99)
	}
	r.MsgsPS = float64(r.Msgs) / *secs
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if errors > 0 {
		os.Exit(1)
	}
}
