package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// demoScenarios show the three things a step tool is bought for. Delays are seconds so
// that the demo shows them happening.
var demoScenarios = map[string]string{
	"welcome": `
name: 友だち追加の挨拶 (Welcome)
trigger: {type: follow, refollow: resume}
steps:
  - key: greet
    messages:
      - {type: text, text: "{{display_name|お客様}}さん、デモカフェの友だち追加ありがとうございます！"}
  - key: coupon
    timing: {after: 20s}
    messages:
      - {type: text, text: "はじめての方限定：ドリンク1杯無料クーポン WELCOME1"}
  - key: remind
    timing: {after: 40s}
    messages:
      - {type: text, text: "クーポンの期限はあと3日です。ご来店をお待ちしています"}
`,
}

// setupDemoAutomation saves the demo's scenarios and auto-replies on its channel.
func setupDemoAutomation(ctx context.Context, srv *server.Server, channelID string) error {
	return srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		for key, src := range demoScenarios {
			def, err := scenario.ParseDefinition([]byte(src))
			if err != nil {
				return fmt.Errorf("demo scenario %s: %w", key, err)
			}
			if _, err := srv.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: channelID, Key: key, Definition: def, Enabled: true}); err != nil {
				return fmt.Errorf("demo scenario %s: %w", key, err)
			}
		}
		// Fields with their purposes: the privacy notice lists them, and the allergy
		// field shows how special care-required data waits for the friend's consent.
		for _, f := range []friend.Field{
			{Key: "phone", Label: "電話番号 (Phone)", Type: friend.TextField, Purpose: "ご予約の確認のため (to confirm bookings)", Sensitivity: friend.Normal, RetentionDays: 365},
			{Key: "area", Label: "お住まいの地域 (Area)", Type: friend.ChoiceField, Choices: []string{"大阪", "京都", "神戸"},
				Purpose: "地域のお知らせのため (local news)", Sensitivity: friend.Attribute},
			{Key: "allergy", Label: "アレルギー (Allergies)", Type: friend.TextField, Purpose: "安全なメニューをご案内するため (safe menus)",
				Sensitivity: friend.Special, RetentionDays: 180},
		} {
			f.ChannelID = channelID
			if _, err := srv.Friends.DefineField(ctx, tx, f); err != nil {
				return fmt.Errorf("demo field %s: %w", f.Key, err)
			}
		}
		_, err := srv.Replies.Save(ctx, tx, autoreply.Rule{ChannelID: channelID, Key: "hours", Name: "営業時間 (Opening hours)",
			Match: autoreply.MatchContains, Keywords: []string{"営業", "open"}, Enabled: true,
			Template: message.Template{Messages: []message.Message{{Type: "text", Text: "営業時間は 9:00〜21:00 です (Open 9:00-21:00)"}}}})
		return err
	})
}

// setupDemoOperator makes a staff member with the operator role and a random password,
// so the demo shows at once what staff who may not read personal data see: masked names
// and values. Operators need no second factor by default; the owner does.
func setupDemoOperator(ctx context.Context, srv *server.Server, channelID string) (login, password string, err error) {
	b := make([]byte, 10)
	rand.Read(b)
	login, password = "staff", strings.ToLower(base32.StdEncoding.EncodeToString(b))
	m, err := srv.Staff.CreateMember(ctx, login, "Demo Staff", staff.Role(access.Operator), password)
	if err != nil {
		return "", "", err
	}
	err = srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		owner, err := srv.Access.StaffPrincipal(ctx, 0, "demo", access.Owner)
		if err != nil {
			return err
		}
		return srv.Access.SetChannels(ctx, tx, owner, m.ID, []string{channelID})
	})
	return login, password, err
}
