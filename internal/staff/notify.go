package staff

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Pusher sends one text message to a LINE user, with a retry key so that LINE accepts a
// retried notification once. The server gives the LINE client of one of its channels.
type Pusher func(ctx context.Context, to, text, retryKey string) error

// LineNotifier sends each flag to a LINE user as a text message: the owner's own LINE
// account, following one of the shop's channels, learns of a suspicious sign-in on the
// phone in their pocket. The text names the staff login and the kind, nothing more.
type LineNotifier struct {
	To       string // the LINE user ID (U...)
	Push     Pusher
	RetryKey func(parts ...string) string
}

// Notify implements Notifier.
func (n *LineNotifier) Notify(ctx context.Context, f Flag) error {
	text := "linestep: " + flagTitles[f.Kind]
	if f.Login != "" {
		text += "\n" + f.Login
	}
	text += "\n" + f.At.In(jst).Format("2006-01-02 15:04") + " JST"
	return n.Push(ctx, n.To, text, n.RetryKey("security-flag", strconv.FormatInt(f.ID, 10), n.To))
}

// Notifiers tells every notifier; one failing does not keep the others from hearing.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(ctx context.Context, f Flag) error {
	var errs []error
	for _, n := range ns {
		errs = append(errs, n.Notify(ctx, f))
	}
	return errors.Join(errs...)
}

// jst is the zone of the notification text; the flag's time is stored in UTC.
var jst = time.FixedZone("JST", 9*3600)
