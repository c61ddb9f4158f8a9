// Package mqttlink is the node's link to the head-end over MQTT: the
// device-state-replica documents of package shadow on the topics of
// docs/mqtt.md, delivery of packages (HTTP Range, or the in-band block
// stream), and reports of every state. It is a client of the node's
// command API and knows nothing of flash.
package mqttlink
