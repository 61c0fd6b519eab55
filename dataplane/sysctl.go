package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctlWant is one setting the dataplane needs. From, when set, limits
// the change to that current value (accept_ra 1 -> 2 only).
type sysctlWant struct {
	name, value, from string
}

func (k *Kernel) sysctlWants() []sysctlWant {
	w := []sysctlWant{
		{name: "net.ipv6.conf.all.forwarding", value: "1"},
		{name: "net.ipv4.ip_forward", value: "1"},
		{name: "net.ipv6.conf.all.seg6_enabled", value: "1"},
	}
	if wan := k.opt.WANInterface; wan != "" {
		w = append(w,
			sysctlWant{name: "net.ipv6.conf." + wan + ".seg6_enabled", value: "1"},
			// With forwarding on, accept_ra=1 ignores router advertisements
			// and the WAN would lose its default route: 2 keeps them.
			sysctlWant{name: "net.ipv6.conf." + wan + ".accept_ra", value: "2", from: "1"})
	}
	if k.status.Capabilities.VRF {
		// End.DT4 / End.DT46 need each VRF table bound to one VRF only.
		w = append(w, sysctlWant{name: "net.vrf.strict_mode", value: "1"})
	}
	return w
}

// setSysctls sets every needed sysctl in the dataplane's namespace.
func (k *Kernel) setSysctls() []Sysctl {
	var out []Sysctl
	for _, w := range k.sysctlWants() {
		out = append(out, k.setSysctl(w))
	}
	return out
}

// retrySysctls sets again those that failed (a WAN device that appeared
// after Open).
func (k *Kernel) retrySysctls() {
	for i, s := range k.status.Sysctls {
		if s.Err == "" {
			continue
		}
		for _, w := range k.sysctlWants() {
			if w.name == s.Name {
				k.status.Sysctls[i] = k.setSysctl(w)
			}
		}
	}
}

func sysctlPath(name string) string {
	// Interface names may hold dots; only the fixed part is split.
	parts := strings.SplitN(name, ".", 4)
	if len(parts) == 4 && parts[0] == "net" && parts[2] == "conf" {
		last := strings.LastIndex(parts[3], ".")
		return filepath.Join("/proc/sys/net", parts[1], "conf", parts[3][:last], parts[3][last+1:])
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

func (k *Kernel) setSysctl(w sysctlWant) Sysctl {
	s := Sysctl{Name: w.name}
	err := inNetns(k.ns, func() error {
		p := sysctlPath(w.name)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		cur := strings.TrimSpace(string(b))
		s.Value = cur
		if cur == w.value || (w.from != "" && cur != w.from) {
			return nil
		}
		if err := os.WriteFile(p, []byte(w.value), 0o644); err != nil {
			return err
		}
		s.Was, s.Value = cur, w.value
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%s: not present in this kernel or no such interface", w.name)
		}
		s.Err = err.Error()
	}
	return s
}
