package cwmpclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"
)

// Inform event codes (TR-069 §3.7.1.5).
const (
	EventBootstrap          = "0 BOOTSTRAP"
	EventBoot               = "1 BOOT"
	EventPeriodic           = "2 PERIODIC"
	EventScheduled          = "3 SCHEDULED"
	EventValueChange        = "4 VALUE CHANGE"
	EventConnectionRequest  = "6 CONNECTION REQUEST"
	EventTransferComplete   = "7 TRANSFER COMPLETE"
	EventDiagnosticsDone    = "8 DIAGNOSTICS COMPLETE"
	EventMReboot            = "M Reboot"
	EventMScheduleInform    = "M ScheduleInform"
	EventMDownload          = "M Download"
	EventMUpload            = "M Upload"
	defaultEventsFile       = "cwmp-events.json"
	maxPendingEvents        = 64
	maxTransferRecords      = 16 // GetQueuedTransfers lists at most 16
	eventsFileFormatVersion = 1
)

// Transfer states, as GetQueuedTransfers reports them.
const (
	TransferQueued     = 1
	TransferInProgress = 2
	TransferCompleted  = 3
)

// droppedOnBoot are the events not carried across a reboot (TR-069 Table 7,
// the retry policy of each event code; icwmp's event table agrees): a new
// "1 BOOT" replaces the old one, a value change is superseded by the boot
// (the ACS re-reads what it cares about after 1 BOOT), a connection request
// is answered only by a session started for it, and diagnostics results do
// not survive a reboot. Everything else (0 BOOTSTRAP, 2 PERIODIC, 3 SCHEDULED,
// 7 TRANSFER COMPLETE, the M events, vendor events) is retried until an
// InformResponse acknowledges it.
var droppedOnBoot = []string{EventBoot, EventValueChange, EventConnectionRequest, EventDiagnosticsDone}

// TransferRecord is one Download or Upload from the ACS, persisted from the
// moment it is accepted until the ACS acknowledges its TransferComplete.
type TransferRecord struct {
	ID             uint64    `json:"id"`
	IsDownload     bool      `json:"is_download"`
	CommandKey     string    `json:"command_key"`
	FileType       string    `json:"file_type"`
	URL            string    `json:"url"`
	Username       string    `json:"username,omitempty"`
	Password       string    `json:"password,omitempty"`
	FileSize       uint32    `json:"file_size,omitempty"`
	TargetFileName string    `json:"target_file_name,omitempty"`
	NotBefore      time.Time `json:"not_before"` // accepted + DelaySeconds
	State          int       `json:"state"`
	StartTime      time.Time `json:"start_time"`
	CompleteTime   time.Time `json:"complete_time"`
	FaultCode      int       `json:"fault_code,omitempty"`
	FaultString    string    `json:"fault_string,omitempty"`
}

// DownloadRecord is the queued record of a Download received at now.
func DownloadRecord(d Download, now time.Time) TransferRecord {
	return TransferRecord{IsDownload: true, CommandKey: d.CommandKey, FileType: d.FileType, URL: d.URL,
		Username: d.Username, Password: d.Password, FileSize: d.FileSize, TargetFileName: d.TargetFileName,
		NotBefore: now.Add(time.Duration(d.DelaySeconds) * time.Second), State: TransferQueued}
}

// UploadRecord is the queued record of an Upload received at now.
func UploadRecord(u Upload, now time.Time) TransferRecord {
	return TransferRecord{CommandKey: u.CommandKey, FileType: u.FileType, URL: u.URL,
		Username: u.Username, Password: u.Password,
		NotBefore: now.Add(time.Duration(u.DelaySeconds) * time.Second), State: TransferQueued}
}

// TransferComplete is the message reporting a completed record.
func (r TransferRecord) TransferComplete() TransferComplete {
	return TransferComplete{CommandKey: r.CommandKey, StartTime: r.StartTime, CompleteTime: r.CompleteTime,
		Fault: FaultStruct{Code: r.FaultCode, String: r.FaultString}}
}

// Queued is the record as GetAllQueuedTransfers lists it.
func (r TransferRecord) Queued() AllQueuedTransfer {
	return AllQueuedTransfer{CommandKey: r.CommandKey, State: r.State, IsDownload: r.IsDownload,
		FileType: r.FileType, FileSize: r.FileSize, TargetFileName: r.TargetFileName}
}

// ErrUnknownTransfer is wrapped when no record has the given ID or key.
var ErrUnknownTransfer = errors.New("unknown transfer")

// EventStore keeps the undelivered Inform events and the transfer records
// in a Store, rewriting the file on every change, so that they survive a
// restart and a reboot. It is safe for concurrent use.
type EventStore struct {
	store Store
	file  string

	mu    sync.Mutex
	state eventsState
}

type eventsState struct {
	Version   int              `json:"version"`
	Events    []EventStruct    `json:"events"`
	Transfers []TransferRecord `json:"transfers"`
	NextID    uint64           `json:"next_id"`
}

// emptyEventStore holds no events; its first change overwrites file.
func emptyEventStore(st Store, file string) *EventStore {
	return &EventStore{store: st, file: file, state: eventsState{Version: eventsFileFormatVersion, NextID: 1}}
}

// NewEventStore loads the events file (empty means defaultEventsFile); a
// file that does not exist yet is an empty store.
func NewEventStore(st Store, file string) (*EventStore, error) {
	if file == "" {
		file = defaultEventsFile
	}
	s := emptyEventStore(st, file)
	data, err := st.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	var loaded eventsState
	if err := json.Unmarshal(data, &loaded); err != nil {
		return nil, fmt.Errorf("parse %s: %w: %w", file, errCorruptState, err)
	}
	if loaded.Version != eventsFileFormatVersion {
		return nil, fmt.Errorf("%s: %w: format version %d, want %d", file, errCorruptState, loaded.Version, eventsFileFormatVersion)
	}
	if loaded.NextID == 0 {
		loaded.NextID = 1
	}
	s.state = loaded
	return s, nil
}

// singleInstanceEvent reports whether at most one event with this code may be pending:
// the numbered codes are single, the "M ..." method events are one per
// request (TR-069 "cumulative behaviour").
func singleInstanceEvent(code string) bool { return !strings.HasPrefix(code, "M ") }

// Add records events to deliver with the next Inform. A single-instance code
// already pending, or an identical M event, is not added twice.
func (s *EventStore) Add(evs ...EventStruct) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.Clone(s.state.Events)
	for _, ev := range evs {
		if ev.Code == "" {
			return fmt.Errorf("event with an empty code (command key %q)", ev.CommandKey)
		}
		if slices.ContainsFunc(next, func(p EventStruct) bool {
			return p.Code == ev.Code && (singleInstanceEvent(ev.Code) || p.CommandKey == ev.CommandKey)
		}) {
			continue
		}
		if len(next) >= maxPendingEvents {
			return fmt.Errorf("event %q: %d events already pending", ev.Code, len(next))
		}
		next = append(next, ev)
	}
	return s.commit(func(st *eventsState) { st.Events = next })
}

// Pending lists the events for the next Inform: those added and not yet
// delivered, plus "7 TRANSFER COMPLETE" and "M Download"/"M Upload" for every
// completed transfer whose TransferComplete the ACS has not acknowledged
// (they are repeated in every Inform until it has).
func (s *EventStore) Pending() []EventStruct {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.state.Events)
	add := func(ev EventStruct) {
		if !slices.Contains(out, ev) && (!singleInstanceEvent(ev.Code) || !slices.ContainsFunc(out, func(p EventStruct) bool { return p.Code == ev.Code })) {
			out = append(out, ev)
		}
	}
	for _, r := range s.state.Transfers {
		if r.State != TransferCompleted {
			continue
		}
		add(EventStruct{Code: EventTransferComplete})
		m := EventMUpload
		if r.IsDownload {
			m = EventMDownload
		}
		add(EventStruct{Code: m, CommandKey: r.CommandKey})
	}
	return out
}

// Delivered removes the events an InformResponse acknowledged (the ones the
// Inform carried); events added since stay pending.
func (s *EventStore) Delivered(evs []EventStruct) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.Clone(s.state.Events)
	for _, ev := range evs {
		if i := slices.Index(next, ev); i >= 0 {
			next = slices.Delete(next, i, i+1)
		}
	}
	return s.commit(func(st *eventsState) { st.Events = next })
}

// OnBoot drops the events that must not survive a reboot (see
// droppedOnBoot); call it once at boot, before adding "1 BOOT".
func (s *EventStore) OnBoot() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(s.state.Events), func(ev EventStruct) bool {
		return slices.Contains(droppedOnBoot, ev.Code)
	})
	return s.commit(func(st *eventsState) { st.Events = next })
}

// AddTransfer stores a new record and returns it with its ID. A full queue
// is a FaultResourcesExceeded fault.
func (s *EventStore) AddTransfer(r TransferRecord) (TransferRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.state.Transfers) >= maxTransferRecords {
		return r, NewFault(FaultResourcesExceeded, "transfer queue holds %d transfers already", len(s.state.Transfers))
	}
	r.ID = s.state.NextID
	if r.State == 0 {
		r.State = TransferQueued
	}
	next := append(slices.Clone(s.state.Transfers), r)
	return r, s.commit(func(st *eventsState) { st.Transfers, st.NextID = next, r.ID+1 })
}

// UpdateTransfer replaces the record with r.ID (e.g. to mark it in progress,
// or completed with its times and fault).
func (s *EventStore) UpdateTransfer(r TransferRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.state.Transfers, func(t TransferRecord) bool { return t.ID == r.ID })
	if i < 0 {
		return fmt.Errorf("%w: id %d", ErrUnknownTransfer, r.ID)
	}
	next := slices.Clone(s.state.Transfers)
	next[i] = r
	return s.commit(func(st *eventsState) { st.Transfers = next })
}

// Transfers lists all records, oldest first.
func (s *EventStore) Transfers() []TransferRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.state.Transfers)
}

// RemoveTransfer forgets a record: after the ACS acknowledged its
// TransferComplete, or when it was cancelled.
func (s *EventStore) RemoveTransfer(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.state.Transfers, func(t TransferRecord) bool { return t.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: id %d", ErrUnknownTransfer, id)
	}
	next := slices.Delete(slices.Clone(s.state.Transfers), i, i+1)
	return s.commit(func(st *eventsState) { st.Transfers = next })
}

// CancelTransfer removes the queued transfers with commandKey (TR-069
// CancelTransfer): fault 9021 if one of them has started, 9003 if none has
// that key.
func (s *EventStore) CancelTransfer(commandKey string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, t := range s.state.Transfers {
		if t.CommandKey != commandKey {
			continue
		}
		found = true
		if t.State != TransferQueued {
			return NewFault(FaultCancelNotPermitted, "transfer %q already started", commandKey)
		}
	}
	if !found {
		return NewFault(FaultInvalidArguments, "no transfer with CommandKey %q", commandKey)
	}
	next := slices.DeleteFunc(slices.Clone(s.state.Transfers), func(t TransferRecord) bool { return t.CommandKey == commandKey })
	return s.commit(func(st *eventsState) { st.Transfers = next })
}

// commit writes the state with change applied and keeps it in memory only
// if the write succeeded, so memory never runs ahead of the disk.
func (s *EventStore) commit(change func(*eventsState)) error {
	next := s.state
	change(&next)
	data, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode %s: %w", s.file, err)
	}
	if err := s.store.WriteFile(s.file, data); err != nil {
		return fmt.Errorf("write %s: %w", s.file, err)
	}
	s.state = next
	return nil
}
