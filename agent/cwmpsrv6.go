package agent

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
)

// SRv6Object is the vendor object of ITU-T Q.Suppl.79's SRv6 elements.
const SRv6Object = "Device.X_ITU-INT_SRv6."

// registerSRv6 adds a read-only view of what the agent derived: the
// delegated prefix, the locator and one Service.{i} per configured
// service (instance i is the i-th service of the config). The writable
// model the controller configures is built on top of this later.
func registerSRv6(t *cwmpclient.Tree, status func() Status) error {
	get := func(f func(Status) string) func([]uint32) (string, error) {
		return func([]uint32) (string, error) { return f(status()), nil }
	}
	sid := func(f func(SIDStatus) string) func([]uint32) (string, error) {
		return func(idx []uint32) (string, error) {
			st := status()
			i := int(idx[0]) - 1
			if i < 0 || i >= len(st.SIDs) {
				return "", fmt.Errorf("service %d is gone", idx[0])
			}
			return f(st.SIDs[i]), nil
		}
	}
	prefixString := func(valid bool, s string) string {
		if !valid {
			return ""
		}
		return s
	}
	errs := []error{
		t.Register(SRv6Object+"IPv6Prefix", roParam(cwmpclient.TypeString, get(func(s Status) string {
			return prefixString(s.Prefix.IsValid(), s.Prefix.String())
		}))),
		t.Register(SRv6Object+"Locator.Name", roParam(cwmpclient.TypeString, get(func(s Status) string { return s.LocatorName }))),
		t.Register(SRv6Object+"Locator.Prefix", roParam(cwmpclient.TypeString, get(func(s Status) string {
			return prefixString(s.Locator.IsValid(), s.Locator.String())
		}))),
		t.Register(SRv6Object+"Locator.Length", roParam(cwmpclient.TypeUnsignedInt, get(func(s Status) string {
			if !s.Locator.IsValid() {
				return "0"
			}
			return strconv.Itoa(s.Locator.Bits())
		}))),
		t.Register(SRv6Object+"ServiceNumberOfEntries", roParam(cwmpclient.TypeUnsignedInt, get(func(s Status) string {
			return strconv.Itoa(len(s.SIDs))
		}))),
		t.RegisterObject(SRv6Object+"Service.{i}.", cwmpclient.Object{Instances: func([]uint32) []uint32 {
			n := len(status().SIDs)
			out := make([]uint32, n)
			for i := range out {
				out[i] = uint32(i + 1)
			}
			return out
		}}),
		t.Register(SRv6Object+"Service.{i}.ServiceID", roParam(cwmpclient.TypeString, sid(func(s SIDStatus) string { return s.Name }))),
		t.Register(SRv6Object+"Service.{i}.ServiceType", roParam(cwmpclient.TypeString, sid(func(s SIDStatus) string { return s.Behavior }))),
		t.Register(SRv6Object+"Service.{i}.ServiceSID", roParam(cwmpclient.TypeString, sid(func(s SIDStatus) string { return s.SID.String() }))),
		t.Register(SRv6Object+"Service.{i}.LocatorName", roParam(cwmpclient.TypeString, get(func(s Status) string { return s.LocatorName }))),
	}
	return errors.Join(errs...)
}

// roParam is a read-only parameter of type typ read by get.
func roParam(typ cwmpclient.Type, get func([]uint32) (string, error)) cwmpclient.Param {
	return cwmpclient.Param{Type: typ, Get: get}
}
