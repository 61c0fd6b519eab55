# srv6cpe — see README.md. Every target that needs tools installs the missing
# ones first (scripts/deps.sh: Debian packages as root, Go modules).

GO       ?= go
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/srv6cpe/srv6cpe/board.Version=$(VERSION)
# scripts/buildtags says why each tag is there (binary size).
TAGS     := $(shell sed -e '/^[#]/d' scripts/buildtags)
GOFLAGS_BUILD := -tags '$(TAGS)' -trimpath -ldflags '$(LDFLAGS)'
FUZZTIME ?= 20s
CROSS    := linux/arm64 linux/arm/7 linux/mipsle linux/amd64

.PHONY: all deps build test lab lab-down cross bench fuzz lint clean

all: build

deps:
	@scripts/deps.sh

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/... ./scripts/labctl

# The whole suite: lint, then every test with the race detector. Tests that
# need root and network namespaces run for real as root and skip otherwise.
test: deps lint
	$(GO) test -race -count=1 -timeout 30m ./...

lab: deps build
	scripts/lab.sh up

lab-down:
	scripts/lab.sh down

# Static, stripped binaries for the boards srv6cpe ships on. No UPX.
cross:
	@set -e; for t in $(CROSS); do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=""; mips=""; \
		case "$$rest" in arm/*) arm=$${rest#*/};; esac; \
		case "$$arch" in mipsle) mips=softfloat;; esac; \
		out=$(BIN)/$$os-$$arch$${arm:+v$$arm}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm GOMIPS=$$mips \
			$(GO) build $(GOFLAGS_BUILD) -o $$out/ ./cmd/...; \
		for f in $$out/*; do printf '%-32s %9d bytes (%s MiB)\n' "$$f" "$$(stat -c %s $$f)" \
			"$$(awk -v s=$$(stat -c %s $$f) 'BEGIN{printf "%.2f", s/1048576}')"; done; \
	done

bench: deps
	scripts/bench.sh

# Every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$list"; exit 1; }; \
		for f in $$(echo "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

lint:
	@out=$$(gofmt -l .); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
