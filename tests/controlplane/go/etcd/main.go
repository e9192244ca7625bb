// Command etcd runs the etcd server from the go.etcd.io/etcd/server/v3 module.
//
// The etcd project's own main package lives in a module that replaces its
// dependencies with local paths, so it cannot be built from the module proxy;
// this program calls the same entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
