package cwmpclient

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"
)

// Actions are the side effects of ACS requests that outlive the request:
// the session engine implements them (reboot after the session, transfer
// queue, scheduled informs).
type Actions interface {
	// Reboot reboots once the session has ended; the next Inform carries
	// "M Reboot" with commandKey.
	Reboot(commandKey string) error
	// FactoryReset resets once the session has ended.
	FactoryReset() error
	// ScheduleInform starts a session after delay with "3 SCHEDULED" and
	// "M ScheduleInform" carrying commandKey.
	ScheduleInform(delay time.Duration, commandKey string) error
	// QueueDownload / QueueUpload accept a checked transfer for later.
	QueueDownload(d Download) error
	QueueUpload(u Upload) error
	// Transfers lists queued and running transfers (at most 16).
	Transfers() []AllQueuedTransfer
	// CancelTransfer removes a queued transfer; one already running gives
	// fault 9021, an unknown key 9003.
	CancelTransfer(commandKey string) error
}

// VendorHandler answers a vendor RPC (e.g. a Q.Suppl.79 Stats_* request).
type VendorHandler func(ctx context.Context, req VendorMessage) (Message, error)

// Dispatcher answers the RPCs an ACS sends to the CPE.
type Dispatcher struct {
	tree    *Tree
	actions Actions

	mu     sync.RWMutex
	vendor map[string]VendorHandler
}

// NewDispatcher answers requests against tree, handing lasting work to
// actions.
func NewDispatcher(tree *Tree, actions Actions) *Dispatcher {
	return &Dispatcher{tree: tree, actions: actions, vendor: map[string]VendorHandler{}}
}

// HandleVendor registers a handler for a vendor method name; it is listed
// in GetRPCMethodsResponse.
func (d *Dispatcher) HandleVendor(name string, h VendorHandler) {
	d.mu.Lock()
	d.vendor[name] = h
	d.mu.Unlock()
}

// handles reports whether a vendor method has a handler.
func (d *Dispatcher) handles(name string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.vendor[name] != nil
}

var standardMethods = []string{
	"GetRPCMethods", "SetParameterValues", "GetParameterValues", "GetParameterNames",
	"SetParameterAttributes", "GetParameterAttributes", "AddObject", "DeleteObject",
	"Reboot", "Download", "Upload", "FactoryReset", "GetQueuedTransfers",
	"GetAllQueuedTransfers", "ScheduleInform", "CancelTransfer",
}

// Methods lists the methods the CPE answers.
func (d *Dispatcher) Methods() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := slices.Clone(standardMethods)
	for n := range d.vendor {
		out = append(out, n)
	}
	slices.Sort(out[len(standardMethods):])
	return out
}

// Dispatch answers one request with its response or a *Fault.
func (d *Dispatcher) Dispatch(ctx context.Context, req Message) Message {
	resp, err := d.dispatch(ctx, req)
	if err != nil {
		return AsFault(err)
	}
	return resp
}

func (d *Dispatcher) dispatch(ctx context.Context, req Message) (Message, error) {
	switch r := req.(type) {
	case GetRPCMethods:
		return GetRPCMethodsResponse{Methods: d.Methods()}, nil
	case GetParameterNames:
		l, err := d.tree.GetNames(r.Path, r.NextLevel)
		return GetParameterNamesResponse{Params: l}, err
	case GetParameterValues:
		l, err := d.tree.GetValues(r.Names)
		return GetParameterValuesResponse{Params: l}, err
	case SetParameterValues:
		if len(r.ParameterKey) > maxCommandKey {
			return nil, NewFault(FaultInvalidArguments, "ParameterKey longer than %d", maxCommandKey)
		}
		st, err := d.tree.SetValues(r.Params, r.ParameterKey)
		return SetParameterValuesResponse{Status: st}, err
	case GetParameterAttributes:
		l, err := d.tree.GetAttributes(r.Names)
		return GetParameterAttributesResponse{Params: l}, err
	case SetParameterAttributes:
		return SetParameterAttributesResponse{}, d.tree.SetAttributes(r.Params)
	case AddObject:
		if len(r.ParameterKey) > maxCommandKey {
			return nil, NewFault(FaultInvalidArguments, "ParameterKey longer than %d", maxCommandKey)
		}
		n, err := d.tree.AddObject(r.ObjectName, r.ParameterKey)
		return AddObjectResponse{InstanceNumber: n}, err
	case DeleteObject:
		if len(r.ParameterKey) > maxCommandKey {
			return nil, NewFault(FaultInvalidArguments, "ParameterKey longer than %d", maxCommandKey)
		}
		return DeleteObjectResponse{}, d.tree.DeleteObject(r.ObjectName, r.ParameterKey)
	case Reboot:
		if err := checkCommandKey(r.CommandKey); err != nil {
			return nil, err
		}
		return RebootResponse{}, d.actions.Reboot(r.CommandKey)
	case FactoryReset:
		return FactoryResetResponse{}, d.actions.FactoryReset()
	case ScheduleInform:
		if r.DelaySeconds == 0 {
			return nil, NewFault(FaultInvalidArguments, "ScheduleInform DelaySeconds must be positive")
		}
		if err := checkCommandKey(r.CommandKey); err != nil {
			return nil, err
		}
		return ScheduleInformResponse{}, d.actions.ScheduleInform(time.Duration(r.DelaySeconds)*time.Second, r.CommandKey)
	case Download:
		if err := checkDownload(r); err != nil {
			return nil, err
		}
		if err := d.actions.QueueDownload(r); err != nil {
			return nil, err
		}
		return DownloadResponse{Status: 1}, nil
	case Upload:
		if err := checkUpload(r); err != nil {
			return nil, err
		}
		if err := d.actions.QueueUpload(r); err != nil {
			return nil, err
		}
		return UploadResponse{Status: 1}, nil
	case GetQueuedTransfers:
		all := d.actions.Transfers()
		out := make([]QueuedTransfer, 0, len(all))
		for _, t := range all {
			out = append(out, QueuedTransfer{CommandKey: t.CommandKey, State: t.State})
		}
		return GetQueuedTransfersResponse{Transfers: out}, nil
	case GetAllQueuedTransfers:
		return GetAllQueuedTransfersResponse{Transfers: d.actions.Transfers()}, nil
	case CancelTransfer:
		return CancelTransferResponse{}, d.actions.CancelTransfer(r.CommandKey)
	case VendorMessage:
		d.mu.RLock()
		h := d.vendor[r.Name]
		d.mu.RUnlock()
		if h == nil {
			return nil, NewFault(FaultMethodNotSupported, "method %s not supported", r.Name)
		}
		return h(ctx, r)
	case nil:
		return nil, errors.New("dispatch: no request")
	}
	return nil, NewFault(FaultMethodNotSupported, "method %s not supported", req.MethodName())
}

func checkCommandKey(k string) error {
	if len(k) > maxCommandKey {
		return NewFault(FaultInvalidArguments, "CommandKey longer than %d", maxCommandKey)
	}
	return nil
}

// File types this CPE accepts (TR-069 A.3.2.8 / A.3.2.9).
const (
	FileFirmware      = "1 Firmware Upgrade Image"
	FileVendorConfig  = "3 Vendor Configuration File"
	FileUploadConfig  = "1 Vendor Configuration File"
	FileUploadLog     = "2 Vendor Log File"
	maxURLLen         = 256
	maxTransferString = 256
)

// uploadIndexed: "3 Vendor Configuration File" / "4 Vendor Log File", with
// the instance number TR-069 Amendment 5 appends, or without (older ACSs).
var uploadIndexed = regexp.MustCompile(`^(3 Vendor Configuration File|4 Vendor Log File)( [1-9][0-9]{0,8})?$`)

func checkTransferURL(raw string) error {
	if raw == "" || len(raw) > maxURLLen {
		return NewFault(FaultInvalidArguments, "URL %q empty or longer than %d", raw, maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return NewFault(FaultInvalidArguments, "URL %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return NewFault(FaultUnsupportedProtocol, "URL scheme %q not supported (http, https)", u.Scheme)
	}
	if u.Host == "" {
		return NewFault(FaultInvalidArguments, "URL %q has no host", raw)
	}
	if u.User != nil {
		// TR-069 A.3.2.8: credentials go in Username/Password, never the URL.
		return NewFault(FaultInvalidArguments, "URL %q carries user information", raw)
	}
	return nil
}

func checkDownload(r Download) error {
	if err := checkCommandKey(r.CommandKey); err != nil {
		return err
	}
	if r.FileType != FileFirmware && r.FileType != FileVendorConfig {
		return NewFault(FaultInvalidArguments, "Download FileType %q not supported", r.FileType)
	}
	if len(r.Username) > maxTransferString || len(r.Password) > maxTransferString || len(r.TargetFileName) > maxTransferString {
		return NewFault(FaultInvalidArguments, "Download argument longer than %d", maxTransferString)
	}
	return checkTransferURL(r.URL)
}

func checkUpload(r Upload) error {
	if err := checkCommandKey(r.CommandKey); err != nil {
		return err
	}
	if r.FileType != FileUploadConfig && r.FileType != FileUploadLog && !uploadIndexed.MatchString(r.FileType) {
		return NewFault(FaultInvalidArguments, "Upload FileType %q not supported", r.FileType)
	}
	if len(r.Username) > maxTransferString || len(r.Password) > maxTransferString {
		return NewFault(FaultInvalidArguments, "Upload argument longer than %d", maxTransferString)
	}
	return checkTransferURL(r.URL)
}
