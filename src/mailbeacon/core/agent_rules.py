"""Our email-specific user-agent rules: a small table, each row with its source.

The general parser (ua-parser, uap-core's regexes) knows browsers, operating systems
and thousands of crawlers, but not what matters for email tracking: which agents are
image proxies fetching for a reader, which fetch at delivery for nobody, which are
security scanners, link previews or HTTP libraries. These rows say that, and run
before the general parser (see `agents.describe_agent`).

A row is (match, kind, app, platform, source):

* `match` is a plain substring, compared case-insensitively, or a compiled regular
  expression (searched as written) where a substring would catch real clients;
* `kind`, `app` and `platform` are what the agent is called (platform FROM_UA means:
  read it from the string, see `agents.platform_of`; "" means none worth showing);
* `source` is where the string is documented or observed: a public user-agent database
  (matomo device-detector, uap-core, monperrus/crawler-user-agents), a vendor document,
  or a public mail archive. A row without a source does not go in.

Order matters: the first matching row wins, so the narrow rows come first (Gmail's
delivery fetcher before anything that looks like a browser, link previews before the
HTTP library they are built on).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mailbeacon.core.agents import FROM_UA, AgentKind

K = AgentKind

DD = "https://github.com/matomo-org/device-detector"  # regexes/ and Tests/fixtures/
CUA = "https://github.com/monperrus/crawler-user-agents"  # crawler-user-agents.json
UAP = "https://github.com/ua-parser/uap-core"  # regexes.yaml, tests/test_ua.yaml


class Rule(NamedTuple):
    """One row of the table: what to look for, what it is, and who says so."""

    match: str | re.Pattern[str]
    kind: AgentKind
    app: str
    platform: str
    source: str
    vendor: str = ""


RULES: tuple[Rule, ...] = (
    # -- Privacy prefetch: Apple Mail Privacy Protection sends exactly this, nothing more.
    Rule(
        re.compile(r"\AMozilla/5\.0\Z"),
        K.PRIVACY_PREFETCH,
        "Apple Mail",
        "",
        "issue #7 (MPP fetches with the bare agent from iCloud Private Relay egress); "
        "https://wordtothewise.com/2021/09/apple-mpp-reporting-and-geolocation/",
        "Apple",
    ),
    # -- Gmail's fetch at delivery: Chrome/42 + Edge/12.246, from Google's network.
    Rule(
        "Edge/12.246",
        K.DELIVERY_FETCHER,
        "Gmail",
        "",
        "https://www.sparkpost.com/blog/gmail-prefetching-images/",
        "Google",
    ),
    # -- Image proxies: a real open, time known, device and place not.
    Rule(
        "GoogleImageProxy",
        K.IMAGE_PROXY,
        "Gmail",
        "",
        f"{DD} Tests/fixtures/bots.yml (Gmail Image Proxy); {CUA}",
        "Google",
    ),
    Rule(
        "YahooMailProxy",
        K.IMAGE_PROXY,
        "Yahoo Mail",
        "",
        f"https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html; {DD} Tests/fixtures/bots.yml",
        "Yahoo",
    ),
    Rule(
        "SeznamEmailProxy",
        K.IMAGE_PROXY,
        "Seznam Email",
        "",
        f"{DD} regexes/bots.yml (Seznam Email Proxy), Tests/fixtures/bots.yml",
        "Seznam",
    ),
    Rule(
        "RamblerMail",
        K.IMAGE_PROXY,
        "Rambler Mail",
        "",
        f"{DD} regexes/bots.yml (RamblerMail Image Proxy)",
        "Rambler",
    ),
    Rule(
        "secureurl.fwdcdn.com",
        K.IMAGE_PROXY,
        "UKR.NET Mail",
        "",
        f"{DD} regexes/bots.yml (UkrNet Mail Proxy: 'via secureurl.fwdcdn.com')",
        "UkrNet",
    ),
    Rule(
        "FastmailUA",
        K.IMAGE_PROXY,
        "Fastmail",
        "",
        "https://www.fastmail.com/policies/bots/; "
        f"{CUA} (FastmailUA: image proxy and link preview)",
        "Fastmail",
    ),
    # -- Security scanners: software opening mail or following links before a person.
    Rule(
        "Barracuda Sentinel",
        K.SCANNER,
        "Barracuda Sentinel",
        "",
        f"{DD} Tests/fixtures/bots.yml ('Barracuda Sentinel (EE)'); "
        "https://www.braze.com/docs/ (bot filtering: 'Barracuda Sentinel (EE)')",
        "Barracuda",
    ),
    Rule(
        "Microsoft Office Existence Discovery",
        K.SCANNER,
        "Microsoft Office link check",
        "",
        f"{DD} regexes/client/mobile_apps.yml (Microsoft Office Existence Discovery)",
        "Microsoft",
    ),
    Rule(
        "BingPreview",
        K.SCANNER,
        "Microsoft BingPreview",
        "",
        f"{DD} regexes/bots.yml, Tests/fixtures/bots.yml (BingPreview/1.0b); "
        "used by Microsoft mail services to render and check links",
        "Microsoft",
    ),
    Rule(
        "Google-Safety",
        K.SCANNER,
        "Google Safety",
        "",
        "https://developers.google.com/search/docs/crawling-indexing/"
        f"google-special-case-crawlers; {DD} Tests/fixtures/bots.yml",
        "Google",
    ),
    Rule(
        "virustotalcloud",
        K.SCANNER,
        "VirusTotal",
        "",
        f"{CUA} (virustotal: 'AppEngine-Google; ... appid: s~virustotalcloud'); "
        f"{DD} Tests/fixtures/bots.yml",
        "VirusTotal",
    ),
    Rule(
        "CloudflareRadarURLScanner",
        K.SCANNER,
        "Cloudflare URL Scanner",
        "",
        f"{CUA} (CloudflareRadarURLScanner)",
        "Cloudflare",
    ),
    Rule(
        "Palo Alto Networks",
        K.SCANNER,
        "Palo Alto Networks",
        "",
        f"{DD} Tests/fixtures/bots.yml (Cortex Xpanse, Expanse scans); {CUA} (Expanse)",
        "Palo Alto Networks",
    ),
    # -- Link previews: chat and social apps unfurling a link someone pasted.
    Rule(
        "Slackbot-LinkExpanding",
        K.LINK_PREVIEW,
        "Slack",
        "",
        f"https://api.slack.com/robots; {CUA}; {DD} Tests/fixtures/bots.yml",
        "Slack",
    ),
    Rule("Slack-ImgProxy", K.LINK_PREVIEW, "Slack", "", f"https://api.slack.com/robots; {CUA}"),
    # Telegram's agent says "like TwitterBot": it comes first.
    Rule("TelegramBot", K.LINK_PREVIEW, "Telegram", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    Rule("Twitterbot", K.LINK_PREVIEW, "X (Twitter)", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    Rule(
        "facebookexternalhit",
        K.LINK_PREVIEW,
        "Facebook",
        "",
        "https://developers.facebook.com/docs/sharing/webmasters/crawler; "
        f"{DD} Tests/fixtures/bots.yml",
    ),
    Rule(
        "meta-externalagent",
        K.LINK_PREVIEW,
        "Meta",
        "",
        f"https://developers.facebook.com/docs/sharing/webmasters/web-crawlers; {CUA}",
    ),
    Rule(
        "Meta-ExternalHit",
        K.LINK_PREVIEW,
        "Meta",
        "",
        f"{CUA} (Meta-ExternalHit/1.1)",
    ),
    # WhatsApp's preview fetcher is "WhatsApp/2.x N|A|i" or bare "WhatsApp"; the app's own
    # requests carry "Android/..." and "Device/..." (device-detector's messaging fixtures).
    Rule(
        re.compile(r"\AWhatsApp(?:/[\d.]+(?: [A-Za-z])?)?\Z"),
        K.LINK_PREVIEW,
        "WhatsApp",
        "",
        f"{CUA} (WhatsApp, 'WhatsApp/0.3.4479 N')",
    ),
    Rule("Discordbot", K.LINK_PREVIEW, "Discord", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    Rule("LinkedInBot", K.LINK_PREVIEW, "LinkedIn", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    Rule(
        "SkypeUriPreview",
        K.LINK_PREVIEW,
        "Skype / Microsoft Teams",
        "",
        f"{CUA} (SkypeUriPreview); {DD} regexes/bots.yml (Skype URI Preview)",
        "Microsoft",
    ),
    Rule(
        "MicrosoftPreview",
        K.LINK_PREVIEW,
        "Microsoft Preview",
        "",
        f"https://aka.ms/MicrosoftPreview; {CUA} (MicrosoftPreview/2.0)",
        "Microsoft",
    ),
    Rule("Applebot", K.LINK_PREVIEW, "Apple", "", f"{DD} Tests/fixtures/bots.yml (Applebot)"),
    Rule("Iframely", K.LINK_PREVIEW, "Iframely", "", f"{DD} Tests/fixtures/bots.yml"),
    Rule("Embedly", K.LINK_PREVIEW, "Embedly", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    Rule("redditbot", K.LINK_PREVIEW, "Reddit", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    # Pinterest's crawler, not its app's in-app browser ("[Pinterest/Android]"): a person.
    Rule(
        re.compile(r"Pinterestbot|\APinterest/0\."),
        K.LINK_PREVIEW,
        "Pinterest",
        "",
        f"{CUA}; {DD} Tests/fixtures/bots.yml ('Pinterest/0.2 (+http://www.pinterest.com/)')",
    ),
    Rule(
        "Yahoo Link Preview",
        K.LINK_PREVIEW,
        "Yahoo Mail",
        "",
        f"https://help.yahoo.com/kb/mail/yahoo-link-preview-SLN23615.html; {CUA}",
        "Yahoo",
    ),
    Rule("FlipboardProxy", K.LINK_PREVIEW, "Flipboard", "", f"{CUA}; {DD} regexes/bots.yml"),
    # -- Headless and automated browsers (before the browsers they are built on).
    Rule("HeadlessChrome", K.BOT, "Headless Chrome", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    Rule("PhantomJS", K.BOT, "PhantomJS", "", f"{CUA}; {DD} Tests/fixtures/bots.yml"),
    Rule("Puppeteer", K.BOT, "Puppeteer", "", f"{CUA} (Puppeteer)"),
    Rule("Selenium", K.BOT, "Selenium", "", f"{CUA} (Selenium)"),
    # -- Mail clients.
    Rule(
        re.compile(r"Microsoft Outlook|\bms-office\b|\bMSOffice \d"),
        K.MAIL_CLIENT,
        "Outlook",
        "Windows",
        f"{DD} Tests/fixtures/desktop.yml (Microsoft Outlook 14, 'ms-office; MSOffice 16'); "
        f"{UAP} regexes.yaml (Outlook)",
        "Microsoft",
    ),
    Rule(
        "MacOutlook",
        K.MAIL_CLIENT,
        "Outlook",
        "macOS",
        "User-Agent 'Microsoft-MacOutlook/16.x' of Outlook for Mac messages on lore.kernel.org; "
        f"{UAP} regexes.yaml (MacOutlook)",
        "Microsoft",
    ),
    Rule(
        "Outlook-iOS",
        K.MAIL_CLIENT,
        "Outlook",
        FROM_UA,
        "https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/"
        f"outlook-for-ios-and-android/secure-outlook-for-ios-and-android; {UAP} regexes.yaml",
        "Microsoft",
    ),
    Rule(
        "Outlook-Android",
        K.MAIL_CLIENT,
        "Outlook",
        "Android",
        "https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/"
        f"outlook-for-ios-and-android/secure-outlook-for-ios-and-android; {UAP} regexes.yaml",
        "Microsoft",
    ),
    Rule(
        "Thunderbird/",
        K.MAIL_CLIENT,
        "Thunderbird",
        FROM_UA,
        f"{DD} Tests/fixtures/desktop.yml; User-Agent of Thunderbird 115 messages on "
        f"lore.kernel.org; {UAP} regexes.yaml",
    ),
    Rule(
        "Postbox", K.MAIL_CLIENT, "Postbox", FROM_UA, f"{DD} Tests/fixtures/desktop.yml (Postbox)"
    ),
    Rule("The Bat!", K.MAIL_CLIENT, "The Bat!", "Windows", f"{DD} Tests/fixtures/unknown.yml"),
    Rule(
        "eM Client", K.MAIL_CLIENT, "eM Client", FROM_UA, f"{DD} regexes/client/pim.yml (eM Client)"
    ),
    Rule("Airmail", K.MAIL_CLIENT, "Airmail", FROM_UA, f"{UAP} regexes.yaml (Airmail)"),
    Rule("Mailbird", K.MAIL_CLIENT, "Mailbird", "Windows", f"{DD} regexes/client/pim.yml"),
    Rule("SparkDesktop", K.MAIL_CLIENT, "Spark", FROM_UA, f"{DD} regexes/client/pim.yml"),
    Rule("Windows Live Mail", K.MAIL_CLIENT, "Windows Mail", "Windows", f"{UAP} regexes.yaml"),
    Rule(
        "YahooMobileMail",
        K.MAIL_CLIENT,
        "Yahoo Mail",
        "",
        f"{UAP} regexes.yaml (YahooMobileMail)",
        "Yahoo",
    ),
    # Apple Mail on macOS fetching through CFNetwork ("Mail/1874 CFNetwork/... Darwin/...").
    Rule(
        re.compile(r"\AMail/\d+(?:\.\d+)* CFNetwork/"),
        K.MAIL_CLIENT,
        "Apple Mail",
        "macOS",
        f"{DD} Tests/fixtures/desktop.yml (Apple Mail: 'Mail/1874 CFNetwork/673.2.1 ...')",
        "Apple",
    ),
    # An Android system web view ("; wv)") fetching a pixel is a mail app rendering the
    # message: Samsung Email, BlueMail and others send the plain web view agent (Samsung
    # Email is told apart only by an X-Requested-With header, which is not kept).
    Rule(
        # Only the bare web view: an app that adds its own mark ("[Pinterest/Android]",
        # "[FB_IAB/...]") is that app's in-app browser, a browser.
        re.compile(
            r"\AMozilla/5\.0 \(Linux; Android [^)]*; wv\) AppleWebKit/[\d.]+ "
            r"\(KHTML, like Gecko\) Version/[\d.]+ Chrome/[\d.]+ (?:Mobile )?Safari/[\d.]+\Z"
        ),
        K.MAIL_CLIENT,
        "Mail app",
        "Android",
        "https://developer.chrome.com/docs/multidevice/user-agent/#webview-user-agent "
        "(WebView agents carry '; wv)'); matomo device-detector Tests/fixtures (Samsung Email)",
        "",
    ),
    # Apple Mail on macOS renders with WebKit and, unlike Safari, sends no "Version/" and
    # no "Safari/": the string ends right after "(KHTML, like Gecko)".
    Rule(
        re.compile(
            r"\AMozilla/5\.0 \(Macintosh;[^)]*\) AppleWebKit/[\d.]+ \(KHTML, like Gecko\)\Z"
        ),
        K.MAIL_CLIENT,
        "Apple Mail",
        "macOS",
        f"{UAP} regexes.yaml and tests/test_ua.yaml (family 'Apple Mail')",
        "Apple",
    ),
    # The Mail app on iOS and iPadOS: the system web view, ending in the build
    # ("Mobile/15E148") with no browser token after it.
    Rule(
        re.compile(
            r"\AMozilla/5\.0 \(iPhone;[^)]*\) AppleWebKit/[\d.]+ \(KHTML, like Gecko\) "
            r"Mobile/\w+\Z"
        ),
        K.MAIL_CLIENT,
        "iPhone Mail",
        "",
        f"{UAP} tests/test_ua.yaml (iOS web view, family 'Mobile Safari UI/WKWebView')",
        "Apple",
    ),
    Rule(
        re.compile(
            r"\AMozilla/5\.0 \(iPad;[^)]*\) AppleWebKit/[\d.]+ \(KHTML, like Gecko\) "
            r"Mobile/\w+\Z"
        ),
        K.MAIL_CLIENT,
        "iPad Mail",
        "",
        f"{UAP} tests/test_ua.yaml (iOS web view, family 'Mobile Safari UI/WKWebView')",
        "Apple",
    ),
    # -- HTTP libraries and command-line tools: software, never a person's client.
    Rule(re.compile(r"\Acurl\b", re.IGNORECASE), K.HTTP_LIBRARY, "curl", "", f"{CUA} (^curl)"),
    Rule(re.compile(r"\AWget\b", re.IGNORECASE), K.HTTP_LIBRARY, "Wget", "", f"{CUA}; {DD}"),
    Rule("python-requests", K.HTTP_LIBRARY, "python-requests", "", f"{CUA} (python-requests)"),
    Rule("Python-urllib", K.HTTP_LIBRARY, "Python urllib", "", f"{CUA} (Python-urllib)"),
    Rule("python-httpx", K.HTTP_LIBRARY, "HTTPX", "", f"{CUA} (httpx)"),
    Rule("aiohttp/", K.HTTP_LIBRARY, "aiohttp", "", f"{CUA} (aiohttp)"),
    Rule("Go-http-client", K.HTTP_LIBRARY, "Go", "", f"{CUA} (Go-http-client)"),
    Rule(
        re.compile(r"\AJava/\d"),
        K.HTTP_LIBRARY,
        "Java",
        "",
        "JDK HttpURLConnection default agent 'Java/<version>' (http.agent, "
        "https://docs.oracle.com/javase/8/docs/technotes/guides/net/properties.html)",
    ),
    Rule("okhttp", K.HTTP_LIBRARY, "OkHttp", "", f"{CUA} (okhttp); {DD} mobile_apps fixture"),
    Rule("Apache-HttpClient", K.HTTP_LIBRARY, "Apache HttpClient", "", f"{CUA}"),
    Rule("Jakarta Commons-HttpClient", K.HTTP_LIBRARY, "Apache HttpClient", "", f"{CUA}"),
    Rule("libwww-perl", K.HTTP_LIBRARY, "libwww-perl", "", f"{CUA} (libwww-perl)"),
    Rule("node-fetch", K.HTTP_LIBRARY, "node-fetch", "", f"{CUA} (node-fetch)"),
    Rule(re.compile(r"\Aaxios/"), K.HTTP_LIBRARY, "axios", "", f"{CUA} (axios)"),
    Rule(re.compile(r"\Aundici\b"), K.HTTP_LIBRARY, "undici", "", f"{DD} podcasting fixture"),
    Rule("PostmanRuntime", K.HTTP_LIBRARY, "Postman", "", "https://learning.postman.com/docs/"),
    Rule(re.compile(r"\ARuby\b"), K.HTTP_LIBRARY, "Ruby", "", f"{DD} podcasting fixture (Ruby)"),
    Rule("Mechanize/", K.HTTP_LIBRARY, "Mechanize", "", f"{CUA} (Mechanize)"),
    Rule("GuzzleHttp", K.HTTP_LIBRARY, "Guzzle", "", "https://docs.guzzlephp.org/"),
    Rule("PHP-Curl-Class", K.HTTP_LIBRARY, "PHP", "", f"{CUA} (PHP-Curl-Class)"),
    Rule(re.compile(r"\APHP/\d"), K.HTTP_LIBRARY, "PHP", "", "PHP's default user_agent ini"),
    Rule("Symfony HttpClient", K.HTTP_LIBRARY, "Symfony", "", f"{DD} podcasting fixture"),
    Rule("reqwest/", K.HTTP_LIBRARY, "reqwest", "", f"{DD} podcasting fixture (reqwest)"),
    Rule(
        "PowerShell/",
        K.HTTP_LIBRARY,
        "PowerShell",
        "",
        "https://learn.microsoft.com/dotnet/api/microsoft.powershell.commands.psuseragent "
        "(default agent '... WindowsPowerShell/5.1...' / 'PowerShell/7...')",
    ),
)
