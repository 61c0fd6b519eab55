package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
)

// monitorTable is Monitor.Task.{i} (Q.Suppl.79 clause 7.4).
const monitorTable = SRv6Object + "Monitor.Task."

// attach registers Monitor.Task.{i} and the Stats_* RPCs on a new client
// and makes it the one reports go through.
func (m *monitor) attach(cl *cwmpclient.Client, info cwmpclient.DeviceInfo) error {
	t := cl.Tree()
	if err := m.register(t); err != nil {
		return err
	}
	d := cl.Dispatcher()
	d.HandleVendor(rpcMonitorConfig, m.onConfigReq)
	d.HandleVendor(rpcMonitorUpdate, m.onUpdateReq)
	d.HandleVendor(rpcMonitorDelete, m.onDeleteReq)
	m.mu.Lock()
	m.cl = cl
	m.deviceID = info.ManufacturerOUI + "-" + info.ProductClass + "-" + info.SerialNumber
	pending, dev := m.pending, m.deviceID
	m.pending = nil
	m.mu.Unlock()
	err := m.syncInstances(t)
	m.sendIPChanges(cl, dev, pending)
	return err
}

func (m *monitor) register(t *cwmpclient.Tree) error {
	var errs []error
	reg := func(name string, p cwmpclient.Param) { errs = append(errs, t.Register(monitorTable+name, p)) }
	task := func(idx []uint32) MonitorTask {
		st := m.snapshot()
		if i := st.index(idx[0]); i >= 0 {
			return st.Tasks[i].Task
		}
		return MonitorTask{}
	}
	errs = append(errs, t.Register(SRv6Object+"Monitor.TaskNumberOfEntries", cwmpclient.Param{Type: cwmpclient.TypeUnsignedInt,
		Get: func([]uint32) (string, error) { return strconv.Itoa(len(m.snapshot().Tasks)), nil }}))
	errs = append(errs, t.RegisterObject(monitorTable+"{i}.", cwmpclient.Object{Writable: true, MaxInstances: maxInstances,
		OnAdd: func(idx []uint32) error {
			return m.editTree(func(st *monitorState) { st.Tasks = append(st.Tasks, monitorEntry{Inst: idx[0]}) })
		},
		OnDelete: func(idx []uint32) error {
			return m.editTree(func(st *monitorState) {
				if i := st.index(idx[0]); i >= 0 {
					st.Tasks = slices.Delete(st.Tasks, i, i+1)
				}
			})
		}}))
	for _, f := range monitorFields {
		typ := cwmpclient.TypeString
		switch f.name {
		case "Port", "MonitorCycle", "PacketInterval", "PacketSize", "DSCP":
			typ = cwmpclient.TypeUnsignedInt
		case "Enable":
			typ = cwmpclient.TypeBoolean
		}
		reg("{i}."+f.name, cwmpclient.Param{Type: typ, Writable: true, MaxLen: 1024,
			Get: func(idx []uint32) (string, error) {
				t := task(idx)
				if f.name != "MonitorTaskID" && f.name != "Role" && !t.complete() {
					t.setDefaults()
				}
				return f.get(t), nil
			},
			Validate: func(_ []uint32, v string) error {
				var t MonitorTask
				return f.set(&t, v)
			}})
	}
	// The last report, while the ACS does not take Stats_Monitor_Data_Resp:
	// forced active notification, and unchanged otherwise.
	result := func(get func(report) string) cwmpclient.Param {
		return cwmpclient.Param{Type: cwmpclient.TypeString, ForceActive: true, Get: func(idx []uint32) (string, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return get(m.results[idx[0]]), nil
		}}
	}
	reg("{i}.Latency", result(func(r report) string { return r.Latency }))
	reg("{i}.Jitter", result(func(r report) string { return r.Jitter }))
	reg("{i}.PacketLossRate", result(func(r report) string { return r.PacketLossRate }))
	// Stays empty: STAMP probes measure no bandwidth.
	reg("{i}.Bandwidth", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func([]uint32) (string, error) { return "", nil }})
	reg("{i}.ReportTimestamp", result(func(r report) string {
		if r.Timestamp.IsZero() {
			return ""
		}
		return rfc3339(r.Timestamp)
	}))
	t.AddCommitter(monitorTable, &monitorCommitter{m: m})
	return errors.Join(errs...)
}

// editTree applies an AddObject / DeleteObject of the ACS (the tree is
// locked: no calls back into it).
func (m *monitor) editTree(f func(*monitorState)) error {
	m.mu.Lock()
	if m.syncing {
		m.mu.Unlock()
		return nil
	}
	cand := m.st.clone()
	m.mu.Unlock()
	f(&cand)
	if errs := cand.check(); len(errs) > 0 {
		return cwmpclient.NewFault(cwmpclient.FaultRequestDenied, "%v", errs[0])
	}
	if err := m.replace(cand); err != nil {
		return cwmpclient.NewFault(cwmpclient.FaultInternal, "%v", err)
	}
	return nil
}

// monitorCommitter applies a SetParameterValues on Monitor.Task as one
// new task list; any bad field refuses all of it.
type monitorCommitter struct {
	m    *monitor
	prev *monitorState
}

func (c *monitorCommitter) Commit(_ cwmpclient.Values, changes []cwmpclient.Change) error {
	m := c.m
	st := m.snapshot()
	cand := st.clone()
	var faults []cwmpclient.SPVFault
	fault := func(name string, err error) {
		faults = append(faults, cwmpclient.SPVFault{Name: name, Code: cwmpclient.FaultInvalidValue, String: err.Error()})
	}
	for _, ch := range changes {
		field := strings.TrimPrefix(ch.Template, monitorTable+"{i}.")
		i := cand.index(ch.Idx[0])
		f, ok := monitorFieldNamed(field)
		switch {
		case i < 0:
			fault(ch.Name, fmt.Errorf("task instance %d is gone", ch.Idx[0]))
		case !ok:
			fault(ch.Name, errors.New("not writable"))
		default:
			t := &cand.Tasks[i].Task
			if err := f.set(t, ch.New); err != nil {
				fault(ch.Name, err)
			}
			if t.complete() {
				t.setDefaults()
			}
		}
	}
	if len(faults) > 0 {
		return spvFault(faults)
	}
	if errs := cand.check(); len(errs) > 0 {
		for _, fe := range errs {
			name := SRv6Object + "Monitor." + fe.Field
			// A problem goes to the changed parameter it names, else to all.
			hit := slices.ContainsFunc(changes, func(ch cwmpclient.Change) bool { return ch.Name == name })
			if hit {
				fault(name, fe.Err)
				continue
			}
			for _, ch := range changes {
				fault(ch.Name, fe)
			}
		}
		return spvFault(faults)
	}
	if err := m.replace(cand); err != nil {
		return cwmpclient.NewFault(cwmpclient.FaultInternal, "apply: %v", err)
	}
	c.prev = &st
	m.log.Info("controller configured monitoring tasks", zap.Int("changes", len(changes)), zap.Int("tasks", len(cand.Tasks)))
	return nil
}

func (c *monitorCommitter) Rollback(cwmpclient.Values, []cwmpclient.Change) {
	if c.prev == nil {
		return
	}
	if err := c.m.replace(*c.prev); err != nil {
		c.m.log.Error("cannot roll the monitoring tasks back", zap.Error(err))
	}
	c.prev = nil
}

// ---- the Stats_* RPCs ----

func statusOK(req cwmpclient.VendorMessage) cwmpclient.Message {
	return cwmpclient.VendorMessage{Name: req.Name + "Response", Fields: []cwmpclient.Field{{Name: "Status", Value: "0"}}}
}

// rpcFault is a 9003 naming each bad element.
func rpcFault(errs []fieldError) error {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return cwmpclient.NewFault(cwmpclient.FaultInvalidArguments, "Invalid arguments: %s", strings.Join(parts, "; "))
}

// fields reads the request's elements into t; unknown elements and bad
// values are named.
func readFields(req cwmpclient.VendorMessage, t *MonitorTask, allowed func(string) bool) []fieldError {
	var errs []fieldError
	for _, fl := range req.Fields {
		f, ok := monitorFieldNamed(fl.Name)
		if !ok || !allowed(f.name) {
			errs = append(errs, fieldError{fl.Name, fmt.Errorf("not an element of %s", req.Name)})
			continue
		}
		if err := f.set(t, strings.TrimSpace(fl.Value)); err != nil {
			errs = append(errs, fieldError{fl.Name, err})
		}
	}
	return errs
}

func taskID(req cwmpclient.VendorMessage) string {
	for _, f := range req.Fields {
		if f.Name == "MonitorTaskID" {
			return strings.TrimSpace(f.Value)
		}
	}
	return ""
}

// onConfigReq creates or replaces the task MonitorTaskID names.
func (m *monitor) onConfigReq(_ context.Context, req cwmpclient.VendorMessage) (cwmpclient.Message, error) {
	var t MonitorTask
	if errs := readFields(req, &t, func(string) bool { return true }); len(errs) > 0 {
		return nil, rpcFault(errs)
	}
	t.setDefaults()
	if errs := t.validate(); len(errs) > 0 {
		return nil, rpcFault(errs)
	}
	st := m.snapshot()
	cand := st.clone()
	i := cand.byID(t.ID)
	if i < 0 {
		inst, err := m.newInstance()
		if err != nil {
			return nil, err
		}
		cand.Tasks = append(cand.Tasks, monitorEntry{Inst: inst, Task: t})
	} else {
		cand.Tasks[i].Task = t
	}
	if errs := cand.check(); len(errs) > 0 {
		return nil, rpcFault(errs)
	}
	if err := m.replace(cand); err != nil {
		return nil, cwmpclient.NewFault(cwmpclient.FaultInternal, "%v", err)
	}
	m.log.Info("monitoring task configured", zap.String("task", t.ID), zap.String("role", t.Role), zap.Stringer("peer", t.PeerIP))
	return statusOK(req), nil
}

// newInstance adds a Monitor.Task instance for a task the RPC creates.
func (m *monitor) newInstance() (uint32, error) {
	m.mu.Lock()
	cl := m.cl
	m.syncing = true
	m.mu.Unlock()
	defer func() { m.mu.Lock(); m.syncing = false; m.mu.Unlock() }()
	if cl == nil {
		return 0, nil
	}
	t := cl.Tree()
	n, err := t.AddObject(monitorTable, t.ParameterKey())
	if err != nil {
		return 0, err
	}
	return n, nil
}

// onUpdateReq re-targets a task under the same MonitorTaskID.
func (m *monitor) onUpdateReq(_ context.Context, req cwmpclient.VendorMessage) (cwmpclient.Message, error) {
	id := taskID(req)
	st := m.snapshot()
	i := st.byID(id)
	if i < 0 {
		return nil, rpcFault([]fieldError{{"MonitorTaskID", fmt.Errorf("%q is no task of this CPE", id)}})
	}
	cand := st.clone()
	t := &cand.Tasks[i].Task
	errs := readFields(req, t, func(name string) bool {
		return name == "MonitorTaskID" || name == "LocalIP" || name == "PeerIP"
	})
	if len(req.Fields) < 2 {
		errs = append(errs, fieldError{"UpdatedLocalIP", errors.New("neither UpdatedLocalIP nor UpdatedPeerIP given")})
	}
	if len(errs) == 0 {
		errs = cand.check()
	}
	if len(errs) > 0 {
		return nil, rpcFault(errs)
	}
	if err := m.replace(cand); err != nil {
		return nil, cwmpclient.NewFault(cwmpclient.FaultInternal, "%v", err)
	}
	m.log.Info("monitoring task re-targeted", zap.String("task", id), zap.Stringer("local", t.LocalIP), zap.Stringer("peer", t.PeerIP))
	return statusOK(req), nil
}

func (m *monitor) onDeleteReq(_ context.Context, req cwmpclient.VendorMessage) (cwmpclient.Message, error) {
	id := taskID(req)
	st := m.snapshot()
	i := st.byID(id)
	if i < 0 {
		return nil, rpcFault([]fieldError{{"MonitorTaskID", fmt.Errorf("%q is no task of this CPE", id)}})
	}
	m.mu.Lock()
	cl := m.cl
	m.mu.Unlock()
	if inst := st.Tasks[i].Inst; inst != 0 && cl != nil {
		// DeleteObject's hook removes the task.
		t := cl.Tree()
		if err := t.DeleteObject(monitorTable+strconv.FormatUint(uint64(inst), 10)+".", t.ParameterKey()); err != nil {
			return nil, err
		}
		return statusOK(req), nil
	}
	cand := st.clone()
	cand.Tasks = slices.Delete(cand.Tasks, i, i+1)
	if err := m.replace(cand); err != nil {
		return nil, cwmpclient.NewFault(cwmpclient.FaultInternal, "%v", err)
	}
	return statusOK(req), nil
}

// syncInstances gives every task a Monitor.Task instance: kept numbers
// stay, unnumbered tasks (the file's) take unclaimed ones or new ones,
// and instances without a task become empty entries.
func (m *monitor) syncInstances(t *cwmpclient.Tree) error {
	m.mu.Lock()
	m.syncing = true
	st := m.st.clone()
	m.mu.Unlock()
	defer func() { m.mu.Lock(); m.syncing = false; m.mu.Unlock() }()
	insts := make([]*uint32, len(st.Tasks))
	for i := range st.Tasks {
		insts[i] = &st.Tasks[i].Inst
	}
	free, err := numberInstances(t, monitorTable, insts)
	errs := []error{err}
	for _, n := range free {
		st.Tasks = append(st.Tasks, monitorEntry{Inst: n})
	}
	m.mu.Lock()
	m.st = st
	if m.owned {
		errs = append(errs, m.saveLocked())
	}
	m.mu.Unlock()
	return errors.Join(errs...)
}
