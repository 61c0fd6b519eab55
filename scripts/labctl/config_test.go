package main

import (
	"strings"
	"testing"
)

func TestParseConfigErrors(t *testing.T) {
	base := `
cpes:
  - name: cpe1
    serial_number: S1
    services: [{service_id: vpn4, route_distinguisher: "65000:1", import_rt: ["65000:1"], lan_prefixes: [10.0.0.0/24]}]
  - {name: cpe2, serial_number: S2}
monitor: [{task_id: t1, sender: cpe1, reflector: cpe2}]
`
	c, err := ParseConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Monitor[0]; m.MonitorCycle != 60 || m.PacketInterval != 100 || m.Protocol != "STAMP" || m.Port != 862 {
		t.Errorf("task defaults %+v", m)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"65000:1"]`, `"65000"]`, `route target "65000"`},
		{`route_distinguisher: "65000:1"`, `route_distinguisher: "x:1"`, `route_distinguisher: "x:1"`},
		{`10.0.0.0/24`, `10.0.0.0/33`, `lan_prefixes: "10.0.0.0/33"`},
		{`reflector: cpe2`, `reflector: cpe3`, `reflector: "cpe3" is no CPE`},
		{`reflector: cpe2`, `reflector: cpe1`, `both "cpe1"`},
		{`serial_number: S2`, `serial_number: S1`, `serial_number: "S1" given twice`},
		{`task_id: t1`, `task_id: t1, protocol: UDP`, `protocol: "UDP"`},
		{`name: cpe2,`, `name: cpe2, locator_length: 200,`, `locator_length: 200`},
		{`name: cpe2,`, `name: cpe2, extension: 0xZ,`, `extension: "0xZ"`},
		{`name: cpe2,`, `name: cpe2, colour: red,`, `field colour not found`},
	} {
		doc := strings.Replace(base, tc.from, tc.to, 1)
		_, err := ParseConfig([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: error %v, want one naming %s", tc.from, tc.to, err, tc.want)
		}
	}
}
