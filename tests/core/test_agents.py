"""describe_agent on real user-agent strings (B3): each row names where the string is from.

Sources, abbreviated in the table:

* DD: matomo device-detector's fixtures and regexes,
  https://github.com/matomo-org/device-detector (Tests/fixtures/*.yml, regexes/*.yml)
* CUA: https://github.com/monperrus/crawler-user-agents (crawler-user-agents.json, "instances")
* MDN: https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/User-Agent
* UUA: https://github.com/tmxkn1/UpdatedUserAgents (useragents.json, current browsers)
* LKML: User-Agent headers of messages archived on https://lore.kernel.org (the same
  string the client sends over HTTP)
* MS: https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/
  outlook-for-ios-and-android/secure-outlook-for-ios-and-android (UserAgent column)
* SP: https://www.sparkpost.com/blog/gmail-prefetching-images/
* BRAZE: https://www.braze.com/docs/ (bot filtering, example agents)
* I7: issue #7 (Apple MPP's exact agent)
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.agent_rules import RULES
from mailbeacon.core.agents import Agent, AgentKind, describe_agent

K = AgentKind

# (user agent, kind, app, platform, source)
REAL_AGENTS: list[tuple[str, AgentKind, str, str, str]] = [
    # -- privacy prefetch and Gmail's delivery fetch
    ("Mozilla/5.0", K.PRIVACY_PREFETCH, "Apple Mail", "", "I7"),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0",
        K.DELIVERY_FETCHER,
        "Gmail",
        "",
        "SP",
    ),
    # -- image proxies
    (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        K.IMAGE_PROXY,
        "Gmail",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        K.IMAGE_PROXY,
        "Yahoo Mail",
        "",
        "DD bots.yml; CUA",
    ),
    ("Mozilla/5.0 SeznamEmailProxy/2.0.174", K.IMAGE_PROXY, "Seznam Email", "", "DD bots.yml"),
    ("FastmailUA/1.0", K.IMAGE_PROXY, "Fastmail", "", "CUA (FastmailUA)"),
    # -- mail clients
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        K.MAIL_CLIENT,
        "Apple Mail",
        "macOS",
        "uap-core test_ua.yaml (Apple Mail)",
    ),
    (
        "Mail/1874 CFNetwork/673.2.1 Darwin/13.1.0 (x86_64) (Macmini6%2C1)",
        K.MAIL_CLIENT,
        "Apple Mail",
        "macOS",
        "DD desktop.yml",
    ),
    (
        "Mail/1816 CFNetwork/673.0.3 Darwin/13.0.0 (x86_64) (Macmini5%2C1)",
        K.MAIL_CLIENT,
        "Apple Mail",
        "macOS",
        "DD desktop.yml",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        K.MAIL_CLIENT,
        "iPhone Mail",
        "",
        "uap-core test_ua.yaml (WKWebView)",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        K.MAIL_CLIENT,
        "iPad Mail",
        "",
        "uap-core test_ua.yaml (WKWebView)",
    ),
    (
        "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
        K.MAIL_CLIENT,
        "Outlook",
        "Windows",
        "DD desktop.yml",
    ),
    (
        "Microsoft Office/14.0 (Windows NT 6.1; Microsoft Outlook 14.0.6106; Pro; ms-office; "
        "MSOffice 14)",
        K.MAIL_CLIENT,
        "Outlook",
        "Windows",
        "DD desktop.yml",
    ),
    (
        "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; WOW64; Trident/7.0; SLCC2; "
        ".NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; .NET4.0C; .NET4.0E; "
        "InfoPath.3; IM-2014-026; IM-2014-043; Microsoft Outlook 14.0.7113; ms-office; "
        "MSOffice 14)",
        K.MAIL_CLIENT,
        "Outlook",
        "Windows",
        "DD desktop.yml",
    ),
    ("Microsoft-MacOutlook/16.70.23021201", K.MAIL_CLIENT, "Outlook", "macOS", "LKML"),
    ("Microsoft-MacOutlook/16.56.21121100", K.MAIL_CLIENT, "Outlook", "macOS", "LKML"),
    ("Outlook-iOS/2.0", K.MAIL_CLIENT, "Outlook", "", "MS"),
    ("Outlook-Android/2.0", K.MAIL_CLIENT, "Outlook", "Android", "MS"),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.4.2",
        K.MAIL_CLIENT,
        "Thunderbird",
        "Linux",
        "LKML",
    ),
    (
        "Mozilla/5.0 (X11; Linux i686; rv:17.0) Gecko/20130330 Thunderbird/17.0.5",
        K.MAIL_CLIENT,
        "Thunderbird",
        "Linux",
        "DD desktop.yml",
    ),
    (
        "Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; en-US; rv:1.9.1.8) Gecko/20100317 "
        "Postbox/1.1.3",
        K.MAIL_CLIENT,
        "Postbox",
        "macOS",
        "DD desktop.yml",
    ),
    ("Postbox 1.0b14 (Windows/2009072715)", K.MAIL_CLIENT, "Postbox", "Windows", "DD desktop.yml"),
    ("The Bat! 4.0.0.22", K.MAIL_CLIENT, "The Bat!", "Windows", "DD unknown.yml"),
    # -- security scanners
    ("Barracuda Sentinel (EE)", K.SCANNER, "Barracuda Sentinel", "", "DD bots.yml; BRAZE"),
    ("Google-Safety", K.SCANNER, "Google Safety", "", "DD bots.yml; CUA"),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b",
        K.SCANNER,
        "Microsoft BingPreview",
        "",
        "DD bots.yml",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/112.0.0.0 Safari/537.36 AppEngine-Google; (+http://code.google.com/appengine; "
        "appid: s~virustotalcloud)",
        K.SCANNER,
        "VirusTotal",
        "",
        "DD bots.yml",
    ),
    (
        "AppEngine-Google; (+http://code.google.com/appengine; appid: s~virustotalcloud)",
        K.SCANNER,
        "VirusTotal",
        "",
        "CUA (virustotal)",
    ),
    (
        "Mozilla/5.0 (compatible; CloudflareRadarURLScanner; +https://radar.cloudflare.com/)",
        K.SCANNER,
        "Cloudflare URL Scanner",
        "",
        "CUA",
    ),
    (
        "Hello from Palo Alto Networks, find out more about our scans in "
        "https://docs-cortex.paloaltonetworks.com/r/1/Cortex-Xpanse/Scanning-activity",
        K.SCANNER,
        "Palo Alto Networks",
        "",
        "DD bots.yml",
    ),
    # -- link previews
    (
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        K.LINK_PREVIEW,
        "Slack",
        "",
        "DD bots.yml; CUA",
    ),
    ("Slack-ImgProxy (+https://api.slack.com/robots)", K.LINK_PREVIEW, "Slack", "", "CUA"),
    ("Twitterbot/1.0", K.LINK_PREVIEW, "X (Twitter)", "", "DD bots.yml; CUA"),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        K.LINK_PREVIEW,
        "Facebook",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        K.LINK_PREVIEW,
        "Meta",
        "",
        "CUA",
    ),
    ("WhatsApp/0.3.4479 N", K.LINK_PREVIEW, "WhatsApp", "", "CUA"),
    ("WhatsApp", K.LINK_PREVIEW, "WhatsApp", "", "CUA"),
    ("TelegramBot (like TwitterBot)", K.LINK_PREVIEW, "Telegram", "", "DD bots.yml; CUA"),
    (
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        K.LINK_PREVIEW,
        "Discord",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Jakarta Commons-HttpClient/3.1 "
        "+http://www.linkedin.com)",
        K.LINK_PREVIEW,
        "LinkedIn",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
        K.LINK_PREVIEW,
        "Skype / Microsoft Teams",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "MicrosoftPreview/2.0; +https://aka.ms/MicrosoftPreview",
        K.LINK_PREVIEW,
        "Microsoft Preview",
        "",
        "CUA",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_1) AppleWebKit/600.2.5 (KHTML, like Gecko) "
        "Version/8.0.2 Safari/600.2.5 (Applebot/0.1)",
        K.LINK_PREVIEW,
        "Apple",
        "",
        "DD bots.yml",
    ),
    ("Iframely/1.6.1 (+https://metadata.xayn.com)", K.LINK_PREVIEW, "Iframely", "", "DD bots.yml"),
    (
        "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
        K.LINK_PREVIEW,
        "Embedly",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
        K.LINK_PREVIEW,
        "Reddit",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "Mozilla/5.0 (compatible; Pinterestbot/1.0; http://www.pinterest.com/bot.html)",
        K.LINK_PREVIEW,
        "Pinterest",
        "",
        "DD bots.yml",
    ),
    (
        "Mozilla/5.0 (compatible; Yahoo Link Preview; "
        "https://help.yahoo.com/kb/mail/yahoo-link-preview-SLN23615.html)",
        K.LINK_PREVIEW,
        "Yahoo Mail",
        "",
        "CUA",
    ),
    # -- HTTP libraries
    ("curl/7.29.0", K.HTTP_LIBRARY, "curl", "", "CUA (^curl)"),
    ("curl", K.HTTP_LIBRARY, "curl", "", "CUA (^curl)"),
    ("Wget/1.14 (linux-gnu)", K.HTTP_LIBRARY, "Wget", "", "CUA"),
    ("Wget/1.11.4 Red Hat modified", K.HTTP_LIBRARY, "Wget", "", "DD desktop.yml"),
    ("python-requests/2.11.1", K.HTTP_LIBRARY, "python-requests", "", "CUA"),
    ("Python-urllib/2.5", K.HTTP_LIBRARY, "Python urllib", "", "CUA"),
    ("python-httpx/0.16.1", K.HTTP_LIBRARY, "HTTPX", "", "CUA"),
    ("Python/3.9 aiohttp/3.7.3", K.HTTP_LIBRARY, "aiohttp", "", "CUA"),
    ("Go-http-client/1.1", K.HTTP_LIBRARY, "Go", "", "CUA"),
    ("Go-http-client/2.0", K.HTTP_LIBRARY, "Go", "", "CUA"),
    ("okhttp/2.7.5", K.HTTP_LIBRARY, "OkHttp", "", "CUA; DD mobile_apps.yml"),
    ("Apache-HttpClient/4.2.3 (java 1.5)", K.HTTP_LIBRARY, "Apache HttpClient", "", "CUA"),
    ("W3C-checklink/4.81 libwww-perl/5.836", K.HTTP_LIBRARY, "libwww-perl", "", "DD bots.yml"),
    (
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        K.HTTP_LIBRARY,
        "node-fetch",
        "",
        "CUA",
    ),
    ("axios/0.18.0", K.HTTP_LIBRARY, "axios", "", "CUA"),
    ("undici", K.HTTP_LIBRARY, "undici", "", "DD podcasting.yml"),
    ("Ruby", K.HTTP_LIBRARY, "Ruby", "", "DD podcasting.yml"),
    (
        "Mechanize/2.9.1 Ruby/3.1.2 (http://github.com/sparklemotion/mechanize/)",
        K.HTTP_LIBRARY,
        "Mechanize",
        "",
        "CUA",
    ),
    ("Symfony HttpClient/Curl", K.HTTP_LIBRARY, "Symfony", "", "DD podcasting.yml"),
    ("reqwest/0.9.19", K.HTTP_LIBRARY, "reqwest", "", "DD podcasting.yml"),
    (
        "PHP-Curl-Class/4.13.0 (+https://github.com/php-curl-class/php-curl-class) PHP/7.2.24 "
        "curl/7.61.1",
        K.HTTP_LIBRARY,
        "PHP",
        "",
        "CUA",
    ),
    # -- headless browsers and crawlers
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/74.0.3729.169 Safari/537.36",
        K.BOT,
        "Headless Chrome",
        "",
        "CUA",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36 Puppeteer",
        K.BOT,
        "Headless Chrome",
        "",
        "CUA (Puppeteer)",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36; Selenium",
        K.BOT,
        "Selenium",
        "",
        "CUA (Selenium)",
    ),
    ("phantomas/1.11.0 (PhantomJS/1.9.8; linux x64)", K.BOT, "PhantomJS", "", "DD bots.yml"),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        K.BOT,
        "Googlebot",
        "",
        "CUA",
    ),
    (
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        K.BOT,
        "YandexBot",
        "",
        "CUA",
    ),
    (
        "Mozilla/5.0 (compatible; MJ12bot/v1.2.1; http://www.majestic12.co.uk/bot.php?+)",
        K.BOT,
        "MJ12bot",
        "",
        "CUA",
    ),
    (
        "Mozilla/5.0 (compatible; Linux x86_64; Mail.RU_Bot/2.0; +http://go.mail.ru/help/robots)",
        K.BOT,
        "Mail.RU_Bot",
        "",
        "DD bots.yml; CUA",
    ),
    (
        "SeobilityBot (SEO Tool; https://www.seobility.net/sites/bot.html)",
        K.BOT,
        "SeobilityBot",
        "",
        "CUA",
    ),
    # -- browsers
    (
        "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:47.0) Gecko/20100101 Firefox/47.0",
        K.BROWSER,
        "Firefox",
        "Windows",
        "MDN",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/121.0",
        K.BROWSER,
        "Firefox",
        "Windows",
        "DD desktop.yml",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:129.0) Gecko/20100101 Firefox/129.0",
        K.BROWSER,
        "Firefox",
        "macOS",
        "UUA",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/51.0.2704.103 Safari/537.36",
        K.BROWSER,
        "Chrome",
        "Linux",
        "MDN",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/127.0.0.0 Safari/537.36",
        K.BROWSER,
        "Chrome",
        "Windows",
        "UUA",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/127.0.0.0 Safari/537.36",
        K.BROWSER,
        "Chrome",
        "macOS",
        "UUA",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/127.0.6533.103 Mobile Safari/537.36",
        K.BROWSER,
        "Chrome",
        "Android",
        "UUA; MDN",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/127.0.6533.107 Mobile/15E148 Safari/604.1",
        K.BROWSER,
        "Chrome",
        "iPhone",
        "UUA",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/127.0.0.0 Safari/537.36 Edg/127.0.2651.98",
        K.BROWSER,
        "Edge",
        "Windows",
        "UUA",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/127.0.0.0 Safari/537.36 Edg/127.0.2651.98",
        K.BROWSER,
        "Edge",
        "macOS",
        "UUA",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/12.1.2 Safari/605.1.15",
        K.BROWSER,
        "Safari",
        "macOS",
        "gist kshyju (Safari OSX)",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 13_5_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/13.1.1 Mobile/15E148 Safari/604.1",
        K.BROWSER,
        "Safari",
        "iPhone",
        "MDN",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        K.BROWSER,
        "Samsung Internet",
        "Android",
        "DD smartphone fixtures",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/51.0.2704.106 Safari/537.36 OPR/38.0.2220.41",
        K.BROWSER,
        "Opera",
        "Windows",
        "MDN",
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14150.90.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/94.0.4606.126 Safari/537.36",
        K.BROWSER,
        "Chrome",
        "ChromeOS",
        "DD desktop.yml",
    ),
    (
        "Mozilla/5.0 (Linux; Android 11; Pixel 5) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/100.0.4896.75 Mobile Safari/537.36",
        K.BROWSER,
        "Chrome",
        "Android",
        "DD smartphone fixtures",
    ),
]


@pytest.mark.parametrize(
    ("user_agent", "kind", "app", "platform", "source"),
    REAL_AGENTS,
    ids=[f"{row[1].value}:{row[0][:48]}" for row in REAL_AGENTS],
)
def test_real_agent_is_described(
    user_agent: str, kind: AgentKind, app: str, platform: str, source: str
) -> None:
    agent = describe_agent(user_agent)
    assert (agent.kind, agent.app, agent.platform) == (kind, app, platform), source


def test_the_table_is_large_and_covers_every_kind_but_unknown() -> None:
    assert len(REAL_AGENTS) >= 80
    assert {row[1] for row in REAL_AGENTS} == set(AgentKind) - {AgentKind.UNKNOWN}


def test_every_rule_names_its_source() -> None:
    for rule in RULES:
        assert rule.source.strip(), rule


def test_mpp_is_only_the_bare_agent() -> None:
    # A browser or app that says more than "Mozilla/5.0" is not Apple's prefetch.
    assert describe_agent("Mozilla/5.0 ").kind is K.PRIVACY_PREFETCH  # header whitespace
    assert describe_agent("Mozilla/5.0 (compatible)").kind is not K.PRIVACY_PREFETCH
    assert describe_agent("mozilla/5.0x").kind is not K.PRIVACY_PREFETCH


def test_safari_and_in_app_browsers_are_not_apple_mail() -> None:
    safari_mac = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/12.1.2 Safari/605.1.15"
    )
    outlook_ios_web_view = (  # the iOS web view with an app's token after the build
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Outlook-iOS/4.2531.0"
    )
    assert describe_agent(safari_mac).app == "Safari"
    assert describe_agent(outlook_ios_web_view) == Agent(
        K.MAIL_CLIENT, "Outlook", "iPhone", "Microsoft"
    )


def test_pinterest_in_app_browser_is_a_person_not_the_crawler() -> None:
    # A link opened inside the Pinterest app: github.com/alaz/legitbot's tests ("not a bot").
    in_app = (
        "Mozilla/5.0 (Linux; Android 8.0.0; SM-G965F Build/R16NW; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/70.0.3538.64 Mobile Safari/537.36 "
        "[Pinterest/Android]"
    )
    assert describe_agent(in_app).kind is K.BROWSER
    assert describe_agent("Pinterest/0.2 (+http://www.pinterest.com/)").kind is K.LINK_PREVIEW


def test_scanners_with_browser_agents_are_left_to_other_signals() -> None:
    # Proofpoint TAP's sample click record (rapid7/insightconnect-plugins#895) shows a
    # plain Chrome agent: by its agent a scanner like this is a browser, and only the
    # classifier's network and timing rules can tell. describe_agent must not guess.
    tap_click = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/89.0.4389.128 Safari/537.36"
    )
    assert describe_agent(tap_click) == Agent(K.BROWSER, "Chrome", "macOS")


def test_unknown_agents_say_nothing() -> None:
    assert describe_agent("") == Agent(K.UNKNOWN, "")
    assert describe_agent("   ") == Agent(K.UNKNOWN, "")
    assert describe_agent("x" * 10_000).kind is K.UNKNOWN
    assert describe_agent("Mozilla/5.0 (X11; \x00 Linux)").kind in set(AgentKind)


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        (Agent(K.MAIL_CLIENT, "Outlook", "Windows"), "Outlook on Windows"),
        (Agent(K.MAIL_CLIENT, "iPhone Mail"), "iPhone Mail"),
        (Agent(K.IMAGE_PROXY, "Gmail", vendor="Google"), "Gmail, image proxy"),
        (Agent(K.UNKNOWN, ""), "Unknown client"),
    ],
)
def test_words(agent: Agent, words: str) -> None:
    assert agent.words() == words


def test_words_of_real_agents() -> None:
    assert describe_agent("Mozilla/4.0 (compatible; ms-office; MSOffice 16)").words() == (
        "Outlook on Windows"
    )
    assert describe_agent(REAL_AGENTS[9][0]).words() == "iPhone Mail"
    assert describe_agent(REAL_AGENTS[2][0]).words() == "Gmail, image proxy"


def test_repeats_are_served_from_the_cache() -> None:
    from mailbeacon.core.agents import _describe

    agent = "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"
    describe_agent(agent)
    hits = _describe.cache_info().hits
    assert describe_agent(agent) is describe_agent(agent)
    assert _describe.cache_info().hits >= hits + 2


hostile_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=300),
    st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")),
    st.sampled_from([row[0] for row in REAL_AGENTS]).flatmap(
        lambda real: st.text(max_size=20).map(lambda junk: real + junk)
    ),
)


@given(hostile_text)
def test_describe_agent_never_raises_and_is_deterministic(user_agent: str) -> None:
    agent = describe_agent(user_agent)
    assert isinstance(agent, Agent)
    assert agent.kind in set(AgentKind)
    assert describe_agent(user_agent) == agent
    assert isinstance(agent.words(), str)


@given(st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=5))
def test_lone_surrogates_do_not_break_it(junk: str) -> None:
    agent = describe_agent("Mozilla/5.0 (Windows NT 10.0) " + junk)
    assert agent.kind in set(AgentKind)
