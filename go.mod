module github.com/srv6cpe/srv6cpe

go 1.25.0

require (
	github.com/beevik/etree v1.5.1 // indirect
	github.com/icholy/digest v1.1.0 // indirect
	github.com/osrg/gobgp/v4 v4.8.0 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.27.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
