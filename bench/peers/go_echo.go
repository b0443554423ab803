// An echo server on Go's net package: a goroutine per connection, io.Copy
// (a 32 KiB buffer) back to the same connection. Go sets TCP_NODELAY and
// the runtime multiplexes goroutines over epoll.
//
// usage: go_echo [PORT]
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_echo:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			io.Copy(c, c) // until the client's FIN, every byte written back
			c.Close()
		}(c)
	}
}
