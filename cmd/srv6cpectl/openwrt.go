package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/srv6cpe/srv6cpe/board/openwrt"
)

// openwrtTimeout bounds the conversion, which may ask netifd over ubus for
// the WAN device.
const openwrtTimeout = 30 * time.Second

var openwrtConfigCommand = &command{
	name:     "openwrt-config",
	summary:  "convert the UCI file /etc/config/srv6cpe to the daemon's YAML (the OpenWrt init script runs it)",
	synopsis: "--uci FILE --out FILE",
	flags: func(fs *flag.FlagSet) func(io.Writer) error {
		var uci, out onceString
		fs.Var(&uci, "uci", "the UCI `FILE` to read, e.g. /etc/config/srv6cpe; required")
		fs.Var(&out, "out", "the YAML `FILE` to write (atomically, 0600, directory 0700); required")
		return func(io.Writer) error {
			for _, f := range []struct {
				name string
				v    *onceString
			}{{"uci", &uci}, {"out", &out}} {
				if !f.v.set || f.v.v == "" {
					return usagef("missing --%s", f.name)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), openwrtTimeout)
			defer cancel()
			return openwrt.WriteDaemonConfig(ctx, uci.v, out.v, openwrt.ExecRunner{})
		}
	},
}
