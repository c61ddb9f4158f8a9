package modem_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"meterupd/boards/modem"
)

// The health check after a trial boot: is the radio linked?
func ExampleModem_Linked() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, "/dev/ttymxc1", modem.Config{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		OnURC:  func(u modem.URC) { fmt.Println("unsolicited:", u.Line) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if err := m.Linked(ctx); err != nil {
		fmt.Println("radio check failed:", err)
	}
}
