# callpark — call-parking PBX. `make help` lists the targets.
GO        ?= go
DIALPLANS ?= dialplans/sample
SIP       ?= 127.0.0.1:5060
PKGS      := ./...

.PHONY: help run build test deps vet fmt-check unit sipp-test fuzz bench bench-blf bench-park load sounds lint clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run callparkd with embedded NATS and the sample dialplans (SIP on 127.0.0.1:5060)
	$(GO) run ./cmd/callparkd --sip $(SIP) --dialplans $(DIALPLANS) $(ARGS)

build: ## build bin/callparkd and bin/parkctl
	$(GO) build -o bin/ ./cmd/...

deps: ## install what the tests need when missing: sipp (sip-tester), sipvicious, chromium, baresip, linphone-cli, tshark
	@need=""; \
	  command -v sipp >/dev/null 2>&1 || need="$$need sip-tester"; \
	  command -v svcrack >/dev/null 2>&1 || need="$$need sipvicious"; \
	  command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	  command -v baresip >/dev/null 2>&1 || need="$$need baresip"; \
	  command -v linphonec >/dev/null 2>&1 || need="$$need linphone-cli"; \
	  command -v tshark >/dev/null 2>&1 || need="$$need tshark"; \
	  if [ -n "$$need" ]; then \
	    echo "installing$$need"; \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; \
	  fi
	@command -v sipp >/dev/null 2>&1 || { echo "sipp is required: apt-get install -y sip-tester"; exit 1; }
	@command -v svcrack >/dev/null 2>&1 || { echo "sipvicious is required: apt-get install -y sipvicious"; exit 1; }
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is required (console tests): apt-get install -y chromium"; exit 1; }
	@for p in baresip:baresip linphonec:linphone-cli tshark:tshark; do command -v $${p%%:*} >/dev/null 2>&1 || { echo "$${p%%:*} is required (softphone interop tests): apt-get install -y $${p#*:}"; exit 1; }; done

vet: ## go vet
	$(GO) vet $(PKGS)

fmt-check: ## fail if gofmt would change anything
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

lint: ## staticcheck (installed at $(STATICCHECK_VERSION) through the Go module proxy when missing)
	@test -x $(STATICCHECK) && $(STATICCHECK) -version | grep -q "$(STATICCHECK_VERSION:v%=%)" || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) $(PKGS)

test: deps fmt-check vet lint ## every test: unit, end-to-end (diago phones), sipp, baresip and linphone interop, the console in Chromium, all with -race
	CALLPARK_REQUIRE_SIPP=1 CALLPARK_REQUIRE_BROWSER=1 CALLPARK_REQUIRE_PHONES=1 $(GO) test -race -count=1 -timeout 20m $(PKGS)

unit: ## quick tests without -race
	$(GO) test -count=1 $(PKGS)

fuzz: ## run each fuzzer for FUZZTIME (default 30s)
	@for t in "FuzzParse ./dialplans" "FuzzDecodeWAV ./sounds" "FuzzParseAuthorization ./core/registrar" "FuzzParse ./core/presence" "FuzzDecode ./events" "FuzzEventJSON ./events" "FuzzOffer ./core" "FuzzDecode ./control/api" "FuzzSIPIngress ./pbx" "FuzzActions ./control/console" "FuzzParseContacts ./core/registrar" "FuzzNonceCheck ./core/registrar" "FuzzStateless ./core/stateless" "FuzzParse ./core/sdp" "FuzzPacket ./core/rtp" "FuzzReceivedAt ./core"; do \
	  set -- $$t; $(GO) test -run='^$$' -fuzz="^$$1$$" -fuzztime=$${FUZZTIME:-30s} $$2 || exit 1; done

bench: ## go test benchmarks of the hot paths
	$(GO) test -run='^$$' -bench=. -benchmem ./core/... ./control/... ./dialplans/...

bench-blf: ## BLF: one slot watched by 1,000 subscriptions over UDP, change to last NOTIFY answered
	$(GO) test -run='^$$' -bench=BLF1000 -benchtime=50x ./pbx/

bench-park: build ## load: parked calls with music and park+retrieve cycles against a running callparkd (see scripts/bench-park.sh)
	scripts/bench-park.sh

sounds: ## regenerate prompts (espeak-ng) and music (sox)
	sounds/generate.sh

clean:
	rm -rf bin
