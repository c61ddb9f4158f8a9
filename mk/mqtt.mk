# The head-end link (mqttlink): its tests run against Debian's mosquitto
# broker and drive the node with mosquitto_pub/mosquitto_sub.
DEB_PKGS += mosquitto mosquitto-clients
