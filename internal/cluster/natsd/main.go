// Command natsd runs a nats-server from a configuration file. Tests start it
// as a child process so that they can kill a cluster member with SIGKILL;
// it is the nats-server of this module's go.mod, not a separate download.
//
//	natsd FILE
package main

import (
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: natsd CONFIG_FILE")
		os.Exit(2)
	}
	opts, err := server.ProcessConfigFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(2)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
	s.WaitForShutdown()
}
