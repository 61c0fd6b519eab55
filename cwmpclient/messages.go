package cwmpclient

import "time"

// Message is one CWMP RPC request or response, in either direction.
type Message interface {
	// MethodName is the element name in the SOAP body ("Inform",
	// "GetParameterValuesResponse", ...).
	MethodName() string
}

// ParameterValue is a ParameterValueStruct. Type is the xsd type without
// prefix ("string", "unsignedInt", ...); on input it is what the xsi:type
// attribute said, empty when absent.
type ParameterValue struct {
	Name, Value, Type string
}

// ParameterInfo is a ParameterInfoStruct (GetParameterNamesResponse).
type ParameterInfo struct {
	Name     string
	Writable bool
}

// ParameterAttribute is a ParameterAttributeStruct.
type ParameterAttribute struct {
	Name         string
	Notification int
	AccessList   []string
}

// SetParameterAttributesStruct is one entry of SetParameterAttributes.
type SetParameterAttributesStruct struct {
	Name               string
	NotificationChange bool
	Notification       int
	AccessListChange   bool
	AccessList         []string
}

// EventStruct is one Inform event.
type EventStruct struct {
	Code, CommandKey string
}

// DeviceID is the Inform DeviceIdStruct.
type DeviceID struct {
	Manufacturer, OUI, ProductClass, SerialNumber string
}

// FaultStruct is the TransferCompleteFaultStruct; Code 0 means success.
type FaultStruct struct {
	Code   int
	String string
}

// QueuedTransfer is a QueuedTransferStruct; State 1 not yet started,
// 2 in progress, 3 completed.
type QueuedTransfer struct {
	CommandKey string
	State      int
}

// AllQueuedTransfer is an AllQueuedTransferStruct.
type AllQueuedTransfer struct {
	CommandKey     string
	State          int
	IsDownload     bool
	FileType       string
	FileSize       uint32
	TargetFileName string
}

// Field is one element of a vendor RPC: a name with either a text value or
// child fields, kept in order (the Q.Suppl.79 Stats_* messages are ordered
// key/value lists).
type Field struct {
	Name     string
	Value    string
	Children []Field
}

// ---- CPE -> ACS requests ----

// Inform opens every session.
type Inform struct {
	DeviceID     DeviceID
	Events       []EventStruct
	MaxEnvelopes uint32
	CurrentTime  time.Time
	RetryCount   uint32
	Params       []ParameterValue
}

// TransferComplete reports the end of a Download or Upload.
type TransferComplete struct {
	CommandKey   string
	Fault        FaultStruct
	StartTime    time.Time
	CompleteTime time.Time
}

// AutonomousTransferComplete reports a transfer the ACS did not ask for.
type AutonomousTransferComplete struct {
	AnnounceURL, TransferURL string
	IsDownload               bool
	FileType                 string
	FileSize                 uint32
	TargetFileName           string
	Fault                    FaultStruct
	StartTime, CompleteTime  time.Time
}

// VendorMessage is any RPC the schemas do not define (e.g. the Q.Suppl.79
// Stats_* messages), in either direction.
type VendorMessage struct {
	Name   string
	Fields []Field
}

// ---- ACS -> CPE requests ----

// GetRPCMethods is sent by either side.
type GetRPCMethods struct{}

// GetParameterNames asks for the names under Path.
type GetParameterNames struct {
	Path      string
	NextLevel bool
}

// GetParameterValues asks for the values of full or partial paths.
type GetParameterValues struct{ Names []string }

// SetParameterValues sets parameters atomically.
type SetParameterValues struct {
	Params       []ParameterValue
	ParameterKey string
}

// GetParameterAttributes asks for attributes of full or partial paths.
type GetParameterAttributes struct{ Names []string }

// SetParameterAttributes changes Notification and AccessList.
type SetParameterAttributes struct {
	Params []SetParameterAttributesStruct
}

// AddObject creates an instance of a multi-instance object.
type AddObject struct{ ObjectName, ParameterKey string }

// DeleteObject deletes an instance.
type DeleteObject struct{ ObjectName, ParameterKey string }

// Reboot asks for a reboot after the session.
type Reboot struct{ CommandKey string }

// FactoryReset asks for a factory reset after the session.
type FactoryReset struct{}

// Download asks the CPE to fetch a file.
type Download struct {
	CommandKey, FileType, URL, Username, Password string
	FileSize                                      uint32
	TargetFileName                                string
	DelaySeconds                                  uint32
	SuccessURL, FailureURL                        string
}

// Upload asks the CPE to send a file.
type Upload struct {
	CommandKey, FileType, URL, Username, Password string
	DelaySeconds                                  uint32
}

// ScheduleInform asks for a session DelaySeconds from now.
type ScheduleInform struct {
	DelaySeconds uint32
	CommandKey   string
}

// GetQueuedTransfers lists pending transfers.
type GetQueuedTransfers struct{}

// GetAllQueuedTransfers lists pending transfers with details.
type GetAllQueuedTransfers struct{}

// CancelTransfer cancels a queued transfer.
type CancelTransfer struct{ CommandKey string }

// ---- responses ----

// InformResponse is the ACS's answer to Inform. Extra holds the text of
// any other child element by its local name: an SD-WAN controller puts its
// registration result there (Q.Suppl.79 §8.1 ConnectionStatus).
type InformResponse struct {
	MaxEnvelopes uint32
	Extra        map[string]string
}

// TransferCompleteResponse is the ACS's answer to TransferComplete.
type TransferCompleteResponse struct{}

// AutonomousTransferCompleteResponse answers AutonomousTransferComplete.
type AutonomousTransferCompleteResponse struct{}

// GetRPCMethodsResponse lists methods (either direction).
type GetRPCMethodsResponse struct{ Methods []string }

// GetParameterNamesResponse lists names.
type GetParameterNamesResponse struct{ Params []ParameterInfo }

// GetParameterValuesResponse lists values.
type GetParameterValuesResponse struct{ Params []ParameterValue }

// SetParameterValuesResponse: Status 1 means applied after a reboot.
type SetParameterValuesResponse struct{ Status int }

// GetParameterAttributesResponse lists attributes.
type GetParameterAttributesResponse struct{ Params []ParameterAttribute }

// SetParameterAttributesResponse is empty.
type SetParameterAttributesResponse struct{}

// AddObjectResponse carries the new instance number.
type AddObjectResponse struct {
	InstanceNumber uint32
	Status         int
}

// DeleteObjectResponse carries the status.
type DeleteObjectResponse struct{ Status int }

// RebootResponse is empty.
type RebootResponse struct{}

// FactoryResetResponse is empty.
type FactoryResetResponse struct{}

// DownloadResponse: Status 0 done (times set), 1 not yet done (times are
// the unknown time).
type DownloadResponse struct {
	Status                  int
	StartTime, CompleteTime time.Time
}

// UploadResponse mirrors DownloadResponse.
type UploadResponse struct {
	Status                  int
	StartTime, CompleteTime time.Time
}

// ScheduleInformResponse is empty.
type ScheduleInformResponse struct{}

// GetQueuedTransfersResponse lists transfers.
type GetQueuedTransfersResponse struct{ Transfers []QueuedTransfer }

// GetAllQueuedTransfersResponse lists transfers with details.
type GetAllQueuedTransfersResponse struct{ Transfers []AllQueuedTransfer }

// CancelTransferResponse is empty.
type CancelTransferResponse struct{}

// MethodName implementations.
func (Inform) MethodName() string                     { return "Inform" }
func (TransferComplete) MethodName() string           { return "TransferComplete" }
func (AutonomousTransferComplete) MethodName() string { return "AutonomousTransferComplete" }
func (m VendorMessage) MethodName() string            { return m.Name }
func (GetRPCMethods) MethodName() string              { return "GetRPCMethods" }
func (GetParameterNames) MethodName() string          { return "GetParameterNames" }
func (GetParameterValues) MethodName() string         { return "GetParameterValues" }
func (SetParameterValues) MethodName() string         { return "SetParameterValues" }
func (GetParameterAttributes) MethodName() string     { return "GetParameterAttributes" }
func (SetParameterAttributes) MethodName() string     { return "SetParameterAttributes" }
func (AddObject) MethodName() string                  { return "AddObject" }
func (DeleteObject) MethodName() string               { return "DeleteObject" }
func (Reboot) MethodName() string                     { return "Reboot" }
func (FactoryReset) MethodName() string               { return "FactoryReset" }
func (Download) MethodName() string                   { return "Download" }
func (Upload) MethodName() string                     { return "Upload" }
func (ScheduleInform) MethodName() string             { return "ScheduleInform" }
func (GetQueuedTransfers) MethodName() string         { return "GetQueuedTransfers" }
func (GetAllQueuedTransfers) MethodName() string      { return "GetAllQueuedTransfers" }
func (CancelTransfer) MethodName() string             { return "CancelTransfer" }
func (InformResponse) MethodName() string             { return "InformResponse" }
func (TransferCompleteResponse) MethodName() string   { return "TransferCompleteResponse" }
func (AutonomousTransferCompleteResponse) MethodName() string {
	return "AutonomousTransferCompleteResponse"
}
func (GetRPCMethodsResponse) MethodName() string          { return "GetRPCMethodsResponse" }
func (GetParameterNamesResponse) MethodName() string      { return "GetParameterNamesResponse" }
func (GetParameterValuesResponse) MethodName() string     { return "GetParameterValuesResponse" }
func (SetParameterValuesResponse) MethodName() string     { return "SetParameterValuesResponse" }
func (GetParameterAttributesResponse) MethodName() string { return "GetParameterAttributesResponse" }
func (SetParameterAttributesResponse) MethodName() string { return "SetParameterAttributesResponse" }
func (AddObjectResponse) MethodName() string              { return "AddObjectResponse" }
func (DeleteObjectResponse) MethodName() string           { return "DeleteObjectResponse" }
func (RebootResponse) MethodName() string                 { return "RebootResponse" }
func (FactoryResetResponse) MethodName() string           { return "FactoryResetResponse" }
func (DownloadResponse) MethodName() string               { return "DownloadResponse" }
func (UploadResponse) MethodName() string                 { return "UploadResponse" }
func (ScheduleInformResponse) MethodName() string         { return "ScheduleInformResponse" }
func (GetQueuedTransfersResponse) MethodName() string     { return "GetQueuedTransfersResponse" }
func (GetAllQueuedTransfersResponse) MethodName() string  { return "GetAllQueuedTransfersResponse" }
func (CancelTransferResponse) MethodName() string         { return "CancelTransferResponse" }
func (*Fault) MethodName() string                         { return "Fault" }
