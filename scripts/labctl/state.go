package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State is what labctl writes to --state after every change: the
// registrations, the information table of Q.Suppl.79 §8.3 step 1, the last
// reports and the IP change events. lab.sh and the e2e test read it.
type State struct {
	Updated   time.Time          `json:"updated"`
	Listen    string             `json:"listen"`
	Devices   map[string]*Device `json:"devices"`
	Tasks     map[string]*Task   `json:"tasks"`
	IPChanges []IPChange         `json:"ip_changes"`
}

// Device is one CPE as the controller knows it.
type Device struct {
	Name                 string            `json:"name"`
	DeviceID             string            `json:"device_id"` // OUI-ProductClass-SerialNumber
	Manufacturer         string            `json:"manufacturer,omitempty"`
	SerialNumber         string            `json:"serial_number"`
	Address              string            `json:"address,omitempty"` // the CPE's WAN address
	ConnectionRequestURL string            `json:"connection_request_url,omitempty"`
	SupportedServices    string            `json:"supported_services,omitempty"`
	IPv6Enable           string            `json:"ipv6_enable,omitempty"`
	RegisteredAt         time.Time         `json:"registered_at"`
	LastInform           time.Time         `json:"last_inform"`
	LastEvents           []string          `json:"last_events,omitempty"`
	Informs              int               `json:"informs"`
	Configured           bool              `json:"configured"`
	ConfiguredAt         *time.Time        `json:"configured_at,omitempty"`
	ConfigError          string            `json:"config_error,omitempty"`
	IPv6Prefix           string            `json:"ipv6_prefix,omitempty"`
	Locator              string            `json:"locator,omitempty"`
	SIDs                 map[string]string `json:"sids,omitempty"` // ServiceID -> ServiceSID
	TunnelStatus         map[string]string `json:"tunnel_status,omitempty"`
}

// Task is one row of the §8.3 information table.
type Task struct {
	ID         string      `json:"id"`
	Sender     TaskEnd     `json:"sender"`
	Reflector  TaskEnd     `json:"reflector"`
	CreatedAt  time.Time   `json:"created_at"`
	Reports    int         `json:"reports"`
	LastReport *Report     `json:"last_report,omitempty"`
	Updates    int         `json:"updates"` // Stats_Monitor_Update_Req sent
	Cycle      int         `json:"monitor_cycle"`
	Config     TaskAnswers `json:"config"`
}

// TaskEnd is one device's side of a task.
type TaskEnd struct {
	Device  string `json:"device"`
	Role    string `json:"role"`
	LocalIP string `json:"local_ip"`
	PeerIP  string `json:"peer_ip"`
}

// TaskAnswers are the CPEs' answers to the task's Stats_Monitor_Config_Req.
type TaskAnswers struct {
	Sender    string `json:"sender,omitempty"`
	Reflector string `json:"reflector,omitempty"`
}

// Report is a Stats_Monitor_Data_Resp as received.
type Report struct {
	ReceivedAt time.Time         `json:"received_at"`
	Device     string            `json:"device"`
	Fields     map[string]string `json:"fields"`
}

// IPChange is one Stats_IP_Change_Report and the controller's reaction
// (§8.3 steps 6-8).
type IPChange struct {
	TaskID          string     `json:"task_id"`
	Device          string     `json:"device"`
	DeviceID        string     `json:"device_id"`
	OldIP           string     `json:"old_ip"`
	NewIP           string     `json:"new_ip"`
	ChangeTimestamp string     `json:"change_timestamp"`
	ReceivedAt      time.Time  `json:"received_at"`
	Problem         string     `json:"problem,omitempty"`
	UpdateTo        string     `json:"update_to,omitempty"`
	UpdateQueuedAt  *time.Time `json:"update_queued_at,omitempty"`
	UpdateSentAt    *time.Time `json:"update_sent_at,omitempty"`
	UpdateAnswerAt  *time.Time `json:"update_answer_at,omitempty"`
	UpdateAnswer    string     `json:"update_answer,omitempty"`
}

// writeJSON writes v to path atomically: a temp file in the same
// directory, fsync, rename, fsync of the directory.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
