package web

import "strings"

// browserName sums a User-Agent up the way a person would say it ("Chrome・Windows",
// "LINE・iPhone"), for the lists of sessions and sign-ins; the audit log keeps it whole.
func browserName(ua string) string {
	if ua == "" {
		return "-"
	}
	pick := func(pairs [][2]string) string {
		for _, p := range pairs {
			if strings.Contains(ua, p[0]) {
				return p[1]
			}
		}
		return ""
	}
	browser := pick([][2]string{{" Line/", "LINE"}, {"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"},
		{"Chrome/", "Chrome"}, {"CriOS/", "Chrome"}, {"Safari/", "Safari"}})
	os := pick([][2]string{{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "Mac"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"}})
	switch {
	case browser != "" && os != "":
		return browser + "・" + os
	case browser != "" || os != "":
		return browser + os
	}
	if len(ua) > 40 {
		return cleanCut(ua, 40) + "…"
	}
	return ua
}

// cleanCut cuts s to at most n bytes on a character boundary.
func cleanCut(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
