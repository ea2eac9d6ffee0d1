package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/ovpn3go/ovpn3go/app/client"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

// A front-end starts a profile by name, answering the session's questions
// (a dialog in the tray, the terminal in the CLI) and showing progress.
func Example() {
	ctx := context.Background()
	c, err := client.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	profiles, err := c.LookupProfile(ctx, "work")
	if err != nil || len(profiles) != 1 {
		log.Fatalf("profile: %v", err)
	}
	s, err := c.NewTunnel(ctx, profiles[0].Path)
	if err != nil {
		log.Fatal(client.ErrorText(err))
	}
	ask := client.PromptFunc(func(ctx context.Context, s *client.Session, slot client.Slot) (string, error) {
		return "answer to " + slot.Description, nil
	})
	err = s.Start(ctx, client.StartOptions{
		Prompter: ask,
		OnStatus: func(st api.Status) { fmt.Println(st) },
		WebAuth: func(ctx context.Context, url string) error {
			fmt.Println("open", url)
			return nil
		},
	})
	switch {
	case errors.Is(err, client.ErrAuthFailed):
		fmt.Println("wrong credentials:", err)
	case err != nil:
		fmt.Println("not connected:", err)
		_ = s.Close(ctx)
	}
}

// The tray follows every session: created/destroyed events, attention
// requests, and the helper coming and going.
func ExampleClient_SessionManagerEvents() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends every subscription below; their channels close
	c, err := client.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sessions, _ := c.SessionManagerEvents(ctx)
	attention, _ := c.AttentionRequired(ctx)
	helper, _ := c.ServiceOwners(ctx)
	for {
		select {
		case ev := <-sessions:
			fmt.Println(ev.Path, ev.Type)
		case a := <-attention:
			fmt.Println(a.Path, "needs", a.Group, a.Message)
		case o := <-helper:
			fmt.Println(o.Name, "running:", o.Running)
		case <-ctx.Done():
			return
		}
	}
}
