package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"meterupd/manifest"
	"meterupd/node"
)

// provisionConsole writes the console's provisioning (issue 12): node.json
// (id, groups) and tech-keys.pem (the technician authority keys).
func provisionConsole(env *cmdEnv, id, groups, techKeys string) error {
	if id == "" && techKeys == "" {
		return nil
	}
	if id == "" || techKeys == "" {
		return usageError{"sim init: --id and --tech-keys go together (the console needs both)"}
	}
	pem, err := os.ReadFile(techKeys)
	if err != nil {
		return err
	}
	if _, err := manifest.ParseKeyringPEM(pem); err != nil {
		return fmt.Errorf("technician keys %s: %w", techKeys, err)
	}
	nf := node.NodeFile{ID: id}
	for _, g := range strings.Split(groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			nf.Groups = append(nf.Groups, g)
		}
	}
	b, _ := json.MarshalIndent(nf, "", "  ")
	if err := os.WriteFile(env.configPath("node.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(env.configPath("tech-keys.pem"), pem, 0o644)
}
