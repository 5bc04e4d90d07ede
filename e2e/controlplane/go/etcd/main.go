// Command etcd is the etcd server. It is the same one-line main as
// go.etcd.io/etcd/v3's main.go, so it builds from the published
// go.etcd.io/etcd/server/v3 module alone.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
