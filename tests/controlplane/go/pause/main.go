// Command pause is the pod sandbox of the end-to-end test node: it holds the
// pod's namespaces, reaps orphaned children and exits on SIGINT or SIGTERM.
// Kubernetes' own pause is C; this does the same job in a static Go binary,
// since no image can be pulled here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
