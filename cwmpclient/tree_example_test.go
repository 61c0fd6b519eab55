package cwmpclient_test

import (
	"fmt"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
)

// serviceCommitter is how a package outside cwmpclient (the SRv6 model)
// takes configuration from the ACS: it sees every validated change, may
// refuse the whole SetParameterValues, and is asked to undo on rollback.
type serviceCommitter struct{}

func (serviceCommitter) Commit(v cwmpclient.Values, changes []cwmpclient.Change) error {
	for _, c := range changes {
		fmt.Printf("%s: %q -> %q (instance %v)\n", c.Template, c.Old, c.New, c.Idx)
	}
	fmt.Println("services now:", v.Instances("Device.X_EXAMPLE.Service."))
	return nil
}

func (serviceCommitter) Rollback(cwmpclient.Values, []cwmpclient.Change) {}

func ExampleTree_Register() {
	tr := cwmpclient.NewTree(nil, "")
	_ = tr.RegisterObject("Device.X_EXAMPLE.Service.{i}.", cwmpclient.Object{Writable: true, MaxInstances: 16,
		OnAdd: func(idx []uint32) error { fmt.Println("added service", idx[0]); return nil }})
	_ = tr.Register("Device.X_EXAMPLE.Service.{i}.VPN", cwmpclient.Param{Writable: true, MaxLen: 32})
	_ = tr.Register("Device.X_EXAMPLE.Service.{i}.Status", cwmpclient.Param{
		Get: func(idx []uint32) (string, error) { return fmt.Sprintf("Up(%d)", idx[0]), nil }})
	_ = tr.Alias("ServiceType", "Device.X_EXAMPLE.Service.1.VPN")
	tr.AddCommitter("Device.X_EXAMPLE.", serviceCommitter{})

	n, _ := tr.AddObject("Device.X_EXAMPLE.Service.", "key1")
	_, _ = tr.SetValues([]cwmpclient.ParameterValue{{Name: "ServiceType", Value: "blue"}}, "key2")
	vals, _ := tr.GetValues([]string{fmt.Sprintf("Device.X_EXAMPLE.Service.%d.", n)})
	for _, v := range vals {
		fmt.Printf("%s = %s\n", v.Name, v.Value)
	}
	// Output:
	// added service 1
	// Device.X_EXAMPLE.Service.{i}.VPN: "" -> "blue" (instance [1])
	// services now: [1]
	// Device.X_EXAMPLE.Service.1.VPN = blue
	// Device.X_EXAMPLE.Service.1.Status = Up(1)
}
