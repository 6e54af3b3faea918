package web

// Texts of the settings page.
func init() {
	addTexts(map[string]string{
		"set.title":       "チャネルの設定",
		"set.id":          "チャネルID",
		"set.created":     "登録日時",
		"set.credentials": "チャネルシークレット・アクセストークン",
		"set.sealed":      "暗号化して保管しています。画面には表示されません（変更はサーバーのコマンドで行います）。",
		"set.name":        "名前",
		"set.tz":          "タイムゾーン",
		"set.tz.help":     "「10:00に送る」などの時刻はこのタイムゾーンで数えます。日本なら Asia/Tokyo。",
		"set.quiet":       "配信停止時間",
		"set.quiet.help":  "この時間帯に当たるシナリオのメッセージは、終わりの時刻まで待ってから送ります（例: 21:00〜09:00）。空欄なら停止しません。",
		"set.quiet.both":  "配信停止時間は開始と終了の両方を入力してください（使わないなら両方空欄）",
		"set.quiet.none":  "なし",
		"set.readonly":    "設定を変更する権限がありません。",
	}, map[string]string{
		"set.title":       "Channel settings",
		"set.id":          "Channel ID",
		"set.created":     "Registered",
		"set.credentials": "Channel secret and access token",
		"set.sealed":      "Stored encrypted. They are never shown here (change them with the server's command line).",
		"set.name":        "Name",
		"set.tz":          "Time zone",
		"set.tz.help":     "Times such as \"send at 10:00\" are read in this zone. For Japan: Asia/Tokyo.",
		"set.quiet":       "Quiet hours",
		"set.quiet.help":  "Scenario messages due within these hours wait until they end (e.g. 21:00 to 09:00). Leave both empty for none.",
		"set.quiet.both":  "Give both the start and the end of the quiet hours (or leave both empty)",
		"set.quiet.none":  "None",
		"set.readonly":    "You may not change the settings.",
	})
}
