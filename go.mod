module meterupd

go 1.26.0

require (
	github.com/dsnet/compress v0.0.1
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/fxamacker/cbor/v2 v2.10.0
	github.com/google/go-cmp v0.7.0
	github.com/ulikunitz/xz v0.5.17
	github.com/veraison/go-cose v1.3.0
	go.bug.st/serial v1.8.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)
