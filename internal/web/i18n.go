package web

// Every user-facing text of the console, in Japanese (the default) and English. A key
// missing from a language fails the tests (see TestCatalogsComplete). Each page's file
// adds its own texts with addTexts, so pages can be written side by side.
var catalog = map[string]map[string]string{"ja": {}, "en": {}}

// addTexts merges a page's texts into the catalog. A key defined twice is a programming
// error caught at start.
func addTexts(ja, en map[string]string) {
	for lang, texts := range map[string]map[string]string{"ja": ja, "en": en} {
		for k, v := range texts {
			if _, dup := catalog[lang][k]; dup {
				panic("web: text " + k + " defined twice")
			}
			catalog[lang][k] = v
		}
	}
}

func init() { addTexts(coreTexts["ja"], coreTexts["en"]) }

var coreTexts = map[string]map[string]string{
	"ja": {
		"app.tagline":         "LINE公式アカウントの自動化・顧客管理",
		"nav.dashboard":       "ダッシュボード",
		"nav.friends":         "友だち",
		"nav.signout":         "ログアウト",
		"nav.staff":           "スタッフと権限",
		"nav.audit":           "監査ログ",
		"nav.account":         "アカウント",
		"nav.inbox":           "1:1チャット",
		"nav.scenarios":       "シナリオ",
		"nav.autoreplies":     "自動応答",
		"nav.broadcasts":      "一斉配信",
		"nav.templates":       "テンプレート",
		"nav.coupons":         "クーポン",
		"nav.settings":        "設定",
		"lang.switch":         "English",
		"login.title":         "ログイン",
		"login.help":          "オーナーから受け取った一回限りのログインリンクを開いてください。サーバーを起動したときにも表示されます。",
		"login.link.title":    "ログインの確認",
		"login.link.help":     "このリンクは一回だけ使えます。下のボタンを押すとログインします。",
		"login.link.button":   "ログインする",
		"login.invalid":       "このリンクは無効か、期限切れか、すでに使われています。新しいリンクを発行してもらってください。",
		"dash.title":          "ダッシュボード",
		"dash.channels":       "チャネル",
		"dash.following":      "友だち",
		"dash.blocked":        "ブロック",
		"dash.unknown":        "未確認",
		"dash.pending":        "処理待ちイベント",
		"dash.webhook":        "Webhook URL",
		"dash.nochannels":     "チャネルがまだありません。linestep channel add で登録してください。",
		"friends.title":       "友だち一覧",
		"friends.name":        "表示名",
		"friends.status":      "状態",
		"friends.followed":    "友だち追加日時",
		"friends.lastmsg":     "最終メッセージ",
		"friends.none":        "まだ友だちがいません。",
		"friends.more":        "さらに表示",
		"friends.all":         "すべて",
		"status.following":    "友だち",
		"status.blocked":      "ブロック中",
		"status.unknown":      "未確認",
		"friend.title":        "友だちの詳細",
		"friend.profile":      "プロフィール",
		"friend.language":     "言語",
		"friend.firstfollow":  "初回友だち追加",
		"friend.follows":      "友だち追加の回数",
		"friend.unblocked":    "ブロック解除による追加",
		"friend.blockedat":    "ブロック日時",
		"friend.tags":         "タグ",
		"friend.fields":       "友だち情報(カスタムフィールド)",
		"friend.notags":       "タグはありません。",
		"friend.nofields":     "登録された情報はありません。",
		"friend.conversation": "トーク履歴",
		"friend.noconv":       "まだメッセージはありません。",
		"friend.noname":       "(プロフィール取得待ち)",
		"msg.sticker":         "スタンプ",
		"msg.image":           "画像",
		"msg.video":           "動画",
		"msg.audio":           "音声",
		"msg.file":            "ファイル",
		"msg.location":        "位置情報",
		"msg.postback":        "ボタン操作",
		"msg.other":           "その他のメッセージ",
		"yes":                 "はい",
		"no":                  "いいえ",
		"error.notfound":      "ページが見つかりません。",
		"error.internal":      "サーバーでエラーが起きました。しばらくしてからもう一度お試しください。",
		"error.forbidden":     "この操作は許可されていません。",
		"error.csrf":          "フォームの有効期限が切れたか、別のサイトから送信されました。ページを開き直してもう一度お試しください。",
	},
	"en": {
		"app.tagline":         "Automation and CRM for LINE Official Accounts",
		"nav.dashboard":       "Dashboard",
		"nav.friends":         "Friends",
		"nav.signout":         "Sign out",
		"nav.staff":           "Staff and roles",
		"nav.audit":           "Audit log",
		"nav.account":         "Account",
		"nav.inbox":           "Chats",
		"nav.scenarios":       "Scenarios",
		"nav.autoreplies":     "Auto-replies",
		"nav.broadcasts":      "Broadcasts",
		"nav.templates":       "Templates",
		"nav.coupons":         "Coupons",
		"nav.settings":        "Settings",
		"lang.switch":         "日本語",
		"login.title":         "Sign in",
		"login.help":          "Open the one-time sign-in link the owner gave you. The server also prints one when it starts.",
		"login.link.title":    "Confirm sign-in",
		"login.link.help":     "This link works once. Press the button to sign in.",
		"login.link.button":   "Sign in",
		"login.invalid":       "This link is invalid, expired or already used. Ask for a new one.",
		"dash.title":          "Dashboard",
		"dash.channels":       "Channels",
		"dash.following":      "Friends",
		"dash.blocked":        "Blocked",
		"dash.unknown":        "Unconfirmed",
		"dash.pending":        "Events waiting",
		"dash.webhook":        "Webhook URL",
		"dash.nochannels":     "No channels yet. Register one with linestep channel add.",
		"friends.title":       "Friends",
		"friends.name":        "Display name",
		"friends.status":      "Status",
		"friends.followed":    "Followed",
		"friends.lastmsg":     "Last message",
		"friends.none":        "No friends yet.",
		"friends.more":        "More",
		"friends.all":         "All",
		"status.following":    "Friend",
		"status.blocked":      "Blocked",
		"status.unknown":      "Unconfirmed",
		"friend.title":        "Friend",
		"friend.profile":      "Profile",
		"friend.language":     "Language",
		"friend.firstfollow":  "First followed",
		"friend.follows":      "Times followed",
		"friend.unblocked":    "Followed again after a block",
		"friend.blockedat":    "Blocked at",
		"friend.tags":         "Tags",
		"friend.fields":       "Custom fields",
		"friend.notags":       "No tags.",
		"friend.nofields":     "No values recorded.",
		"friend.conversation": "Conversation",
		"friend.noconv":       "No messages yet.",
		"friend.noname":       "(profile not fetched yet)",
		"msg.sticker":         "Sticker",
		"msg.image":           "Image",
		"msg.video":           "Video",
		"msg.audio":           "Audio",
		"msg.file":            "File",
		"msg.location":        "Location",
		"msg.postback":        "Button tap",
		"msg.other":           "Other message",
		"yes":                 "Yes",
		"no":                  "No",
		"error.notfound":      "Page not found.",
		"error.internal":      "Something went wrong on the server. Please try again shortly.",
		"error.forbidden":     "You are not allowed to do this.",
		"error.csrf":          "This form expired or was sent from another site. Reload the page and try again.",
	},
}

// translate looks a key up; a missing key shows itself, so it is noticed.
func translate(lang, key string) string {
	if s, ok := catalog[lang][key]; ok {
		return s
	}
	if s, ok := catalog["ja"][key]; ok {
		return s
	}
	return key
}
