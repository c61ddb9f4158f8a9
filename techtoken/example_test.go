package techtoken_test

import (
	"fmt"
	"time"

	"meterupd/manifest"
	"meterupd/techtoken"
)

// The whole exchange: the utility issues a token, the node challenges,
// the technician answers, the node checks the pasted line.
func Example() {
	authority, _ := manifest.GenerateKey("ed25519") // the utility's token key
	tech, _ := manifest.GenerateKey("p256")         // the technician's laptop
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

	token, err := techtoken.Issue(techtoken.Request{
		Subject: "alice", Nodes: []string{"m-0042"}, Scopes: []string{techtoken.ScopeInstall},
		TechKey: tech.Public(), NotBefore: now, Valid: 8 * time.Hour, Now: now,
	}, authority)
	if err != nil {
		fmt.Println(err)
		return
	}

	// On the node: its technician keyring, its id, its clock.
	ring, _ := manifest.NewKeyring(authority.Public())
	v, _ := techtoken.NewVerifier(ring, nil, "m-0042")
	v.Now = func() time.Time { return now.Add(time.Hour) }
	challenges := &techtoken.Challenges{Now: v.Now}
	nonce, _ := challenges.New()

	// On the laptop (meterpkg token answer).
	line, _ := techtoken.Answer(token, tech, nonce, "m-0042")

	// On the node again: the pasted line.
	l, err := techtoken.ParseLogin(line)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := v.Login(l, challenges, techtoken.ScopeInstall)
	fmt.Println(c.Subject, c.Scopes(), err)
	_, err = v.Login(l, challenges, techtoken.ScopeInstall)
	fmt.Println(err)
	// Output:
	// alice [install] <nil>
	// techtoken: unknown or already used challenge (replay)
}
