package mqttlink

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// FileConfig is the link's part of a node's configuration: the file
// link.json beside keys.pem (on a meter in /etc/meterupd). Command-line
// flags override it. A missing file means no link.
//
//	{"broker": "ssl://headend.example.net:8883", "id": "em300-0001234",
//	 "ca": "/etc/meterupd/broker-ca.pem", "cert": "/etc/meterupd/node.pem", "key": "/etc/meterupd/node.key"}
type FileConfig struct {
	Broker   string `json:"broker"`
	ID       string `json:"id"`
	CA       string `json:"ca,omitempty"`
	Cert     string `json:"cert,omitempty"`
	Key      string `json:"key,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// ReadFileConfig reads path; a missing file gives the zero FileConfig.
func ReadFileConfig(path string) (FileConfig, error) {
	var c FileConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if len(b) > 64<<10 {
		return c, fmt.Errorf("mqttlink: %s: larger than 64 KiB", path)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("mqttlink: %s: %w", path, err)
	}
	return c, nil
}

// Apply fills cfg's connection fields from the file where cfg has none.
func (c FileConfig) Apply(cfg *Config) {
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&cfg.Broker, c.Broker)
	set(&cfg.ID, c.ID)
	set(&cfg.CA, c.CA)
	set(&cfg.Cert, c.Cert)
	set(&cfg.Key, c.Key)
	set(&cfg.Username, c.Username)
	set(&cfg.Password, c.Password)
}
