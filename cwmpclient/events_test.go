package cwmpclient

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileStore is an in-memory Store whose writes can be made to fail.
type fileStore struct {
	mu     sync.Mutex
	files  map[string][]byte
	fail   error
	writes int
}

func newFileStore() *fileStore { return &fileStore{files: map[string][]byte{}} }

func (s *fileStore) ReadFile(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
	}
	return slices.Clone(b), nil
}

func (s *fileStore) WriteFile(name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.writes++
	s.files[name] = slices.Clone(data)
	return nil
}

func mustEventStore(t *testing.T, st Store) *EventStore {
	t.Helper()
	es, err := NewEventStore(st, "")
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func evt(code, key string) EventStruct { return EventStruct{Code: code, CommandKey: key} }

func TestEventStoreDedupAndDelivery(t *testing.T) {
	es := mustEventStore(t, newFileStore())
	if got := es.Pending(); len(got) != 0 {
		t.Fatalf("new store pending %v", got)
	}
	evtMust(t, es.Add(evt(EventBoot, ""), evt(EventPeriodic, ""), evt(EventPeriodic, ""), evt(EventMReboot, "k1")))
	evtMust(t, es.Add(evt(EventPeriodic, ""), evt(EventMReboot, "k1"), evt(EventMReboot, "k2"), evt(EventValueChange, "")))
	want := []EventStruct{evt(EventBoot, ""), evt(EventPeriodic, ""), evt(EventMReboot, "k1"), evt(EventMReboot, "k2"), evt(EventValueChange, "")}
	if got := es.Pending(); !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
	sent := es.Pending()
	evtMust(t, es.Add(evt(EventConnectionRequest, ""))) // arrives during the session
	evtMust(t, es.Delivered(sent))
	if got := es.Pending(); !slices.Equal(got, []EventStruct{evt(EventConnectionRequest, "")}) {
		t.Fatalf("after delivery pending %v", got)
	}
	if err := es.Add(evt("", "x")); err == nil {
		t.Fatal("empty code accepted")
	}
}

func TestEventStoreBound(t *testing.T) {
	es := mustEventStore(t, newFileStore())
	for i := range maxPendingEvents {
		evtMust(t, es.Add(evt(EventMScheduleInform, fmt.Sprint(i))))
	}
	if err := es.Add(evt(EventMScheduleInform, "one more")); err == nil || !strings.Contains(err.Error(), "M ScheduleInform") {
		t.Fatalf("over the bound: %v", err)
	}
}

func TestEventStoreRestartAndReboot(t *testing.T) {
	st := newFileStore()
	es := mustEventStore(t, st)
	all := []EventStruct{evt(EventBootstrap, ""), evt(EventBoot, ""), evt(EventPeriodic, ""), evt(EventScheduled, ""),
		evt(EventValueChange, ""), evt(EventConnectionRequest, ""), evt(EventDiagnosticsDone, ""),
		evt(EventMReboot, "r"), evt(EventMScheduleInform, "s"), evt("X 00D09E Vendor", "")}
	evtMust(t, es.Add(all...))

	// A daemon restart without reboot keeps everything.
	if got := mustEventStore(t, st).Pending(); !slices.Equal(got, all) {
		t.Fatalf("after restart %v, want %v", got, all)
	}
	// A reboot drops what TR-069 says is not retried across it.
	rebooted := mustEventStore(t, st)
	evtMust(t, rebooted.OnBoot())
	want := []EventStruct{evt(EventBootstrap, ""), evt(EventPeriodic, ""), evt(EventScheduled, ""),
		evt(EventMReboot, "r"), evt(EventMScheduleInform, "s"), evt("X 00D09E Vendor", "")}
	if got := mustEventStore(t, st).Pending(); !slices.Equal(got, want) {
		t.Fatalf("after reboot %v, want %v", got, want)
	}
}

func TestEventStoreWriteFailureKeepsState(t *testing.T) {
	st := newFileStore()
	es := mustEventStore(t, st)
	evtMust(t, es.Add(evt(EventBoot, "")))
	st.fail = errors.New("disk full")
	if err := es.Add(evt(EventPeriodic, "")); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("write failure: %v", err)
	}
	if got := es.Pending(); !slices.Equal(got, []EventStruct{evt(EventBoot, "")}) {
		t.Fatalf("memory ran ahead of the disk: %v", got)
	}
}

func TestEventStoreCorruptFile(t *testing.T) {
	st := newFileStore()
	st.files[defaultEventsFile] = []byte("{not json")
	if _, err := NewEventStore(st, ""); err == nil || !strings.Contains(err.Error(), defaultEventsFile) {
		t.Fatalf("corrupt file: %v", err)
	}
	st.files[defaultEventsFile] = []byte(`{"version":99}`)
	if _, err := NewEventStore(st, ""); err == nil || !strings.Contains(err.Error(), "99") {
		t.Fatalf("future version: %v", err)
	}
}

func TestEventStoreTransfers(t *testing.T) {
	st := newFileStore()
	es := mustEventStore(t, st)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	fw, err := es.AddTransfer(DownloadRecord(Download{CommandKey: "fw1", FileType: "1 Firmware Upgrade Image",
		URL: "http://fs/fw.bin", FileSize: 10, DelaySeconds: 30}, now))
	evtMust(t, err)
	up, err := es.AddTransfer(UploadRecord(Upload{CommandKey: "log1", FileType: "4 Vendor Log File", URL: "http://fs/up"}, now))
	evtMust(t, err)
	if fw.ID == up.ID || fw.State != TransferQueued || !fw.NotBefore.Equal(now.Add(30*time.Second)) {
		t.Fatalf("records %+v %+v", fw, up)
	}
	if q := fw.Queued(); !q.IsDownload || q.FileSize != 10 || q.State != TransferQueued {
		t.Fatalf("queued view %+v", q)
	}

	// Firmware: in progress, then the box reboots into the new image.
	fw.State, fw.StartTime = TransferInProgress, now.Add(time.Minute)
	evtMust(t, es.UpdateTransfer(fw))
	if err := es.CancelTransfer("fw1"); AsFault(err).Code != FaultCancelNotPermitted {
		t.Fatalf("cancel of a started transfer: %v", err)
	}
	if err := es.CancelTransfer("nope"); AsFault(err).Code != FaultInvalidArguments {
		t.Fatalf("cancel of an unknown key: %v", err)
	}
	es = mustEventStore(t, st)
	evtMust(t, es.OnBoot())
	got := es.Transfers()
	if len(got) != 2 || got[0].State != TransferInProgress || got[0].Password != fw.Password {
		t.Fatalf("after reboot %+v", got)
	}
	fw = got[0]
	fw.State, fw.CompleteTime = TransferCompleted, now.Add(5*time.Minute)
	evtMust(t, es.UpdateTransfer(fw))
	evtMust(t, es.CancelTransfer("log1"))

	want := []EventStruct{evt(EventTransferComplete, ""), evt(EventMDownload, "fw1")}
	pending := es.Pending()
	if !slices.Equal(pending, want) {
		t.Fatalf("pending %v, want %v", pending, want)
	}
	// The Inform carrying them is acknowledged but the session dies before
	// TransferCompleteResponse: the events come back in the next Inform.
	evtMust(t, es.Delivered(pending))
	if got := mustEventStore(t, st).Pending(); !slices.Equal(got, want) {
		t.Fatalf("after a lost TransferCompleteResponse %v, want %v", got, want)
	}
	tc := fw.TransferComplete()
	if tc.CommandKey != "fw1" || !tc.CompleteTime.Equal(fw.CompleteTime) || tc.Fault.Code != 0 {
		t.Fatalf("TransferComplete %+v", tc)
	}
	evtMust(t, es.RemoveTransfer(fw.ID))
	if got := es.Pending(); len(got) != 0 {
		t.Fatalf("after TransferCompleteResponse pending %v", got)
	}
	if err := es.RemoveTransfer(fw.ID); !errors.Is(err, ErrUnknownTransfer) {
		t.Fatalf("second remove: %v", err)
	}
	if err := es.UpdateTransfer(fw); !errors.Is(err, ErrUnknownTransfer) {
		t.Fatalf("update of a removed record: %v", err)
	}
	// IDs are never reused, even across a restart.
	next, err := mustEventStore(t, st).AddTransfer(UploadRecord(Upload{CommandKey: "x"}, now))
	evtMust(t, err)
	if next.ID <= up.ID {
		t.Fatalf("id %d reused (last %d)", next.ID, up.ID)
	}
}

func TestEventStoreTransferQueueFull(t *testing.T) {
	es := mustEventStore(t, newFileStore())
	for i := range maxTransferRecords {
		_, err := es.AddTransfer(UploadRecord(Upload{CommandKey: fmt.Sprint(i)}, time.Time{}))
		evtMust(t, err)
	}
	if _, err := es.AddTransfer(UploadRecord(Upload{CommandKey: "x"}, time.Time{})); AsFault(err).Code != FaultResourcesExceeded {
		t.Fatalf("full queue: %v", err)
	}
}

func evtMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
