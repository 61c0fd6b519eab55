// Command srv6cpectl is the operator CLI of srv6cpe. Commands that query the
// running agent talk to it over its local control socket; "sid derive" works
// offline, for planning an address plan.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
