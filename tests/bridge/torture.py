"""The test's own copies of RFC 4475 torture messages, adapted to the bridge under test.

Each message of RFC 4475 §3 kept here is rewritten so that answers come back:
its top Via names the test's socket (`{via}` = "127.0.0.1:<port>"), its
Request-URI and To name the bridge (`{target}`), and its Call-ID carries the
message's short name (`{name}`), so every response can be told apart. What
makes each message tricky (or broken) is kept as the RFC has it.

`message(name, via, target)` gives the bytes to send. `SDP` is the body the
INVITEs carry (its Content-Length is computed, except where the length is the
point of the test).
"""

from __future__ import annotations

SDP = (
    "v=0\r\no=mhandley 29739 7272939 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
)


def _crlf(text: str) -> str:
    """The RFC shows messages with bare line ends; SIP wants CRLF."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


# name → (RFC 4475 section, message text with {via}, {target}, {name}, {len}, {sdp})
MESSAGES: dict[str, tuple[str, str]] = {
    # ------------------------------------------------------------ 3.1.1 valid messages
    # A short tortuous INVITE: line folding everywhere, escaped quotes, an empty Subject, LWS
    # around colons, an unknown header with a folded value, compact forms, odd casing.
    # (The RFC's has a To tag; removed here so the INVITE starts a dialog and reaches the owner.)
    "wsinv": ("3.1.1.1", """INVITE sip:vivekg@{target};unknownparam SIP/2.0
TO :
 sip:vivekg@{target}
from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: {name}.ndaksdj@192.0.2.1
Content-Length   : {len}
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    {via};branch=z9hG4bK390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

{sdp}"""),
    # A wide range of valid characters: an unknown method made of every token character, a
    # Request-URI with odd user characters, escaped control characters in a quoted display name.
    "intmeth": ("3.1.1.2", """!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@{target} SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bK-.!%66*_+`'~
To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@{target}>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439";tag=_token~1'+`*%!-.
Call-ID: {name}.word%ZK-!.*_+'@word`~)(><:\\/"][?}}{{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb
Content-Length: 0

"""),
    # Escaped characters in URIs: the To user is "%75se%72" ("user").
    "esc01": ("3.1.1.3", """INVITE sip:sips%3Auser%40example.com@{target} SIP/2.0
To: sip:%75se%72@{target}
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: {name}.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@127.0.0.1;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: {len}

{sdp}"""),
    # A display name made only of tokens with LWS, no quotes.
    "lwsdisp": ("3.1.1.6", """OPTIONS sip:user@{target} SIP/2.0
To: sip:user@{target}
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: {name}.1@0ha0isndaksdj
CSeq: 59 OPTIONS
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
l: 0

"""),
    # A second request after the first in one datagram: only the first counts (RFC 3261 §18.3).
    "dblreq": ("3.1.1.8", """OPTIONS sip:user@{target} SIP/2.0
To: sip:j.user@{target}
From: sip:caller@example.net;tag=8814
Max-Forwards: 70
Call-ID: {name}.0ha0isndaksdj99sdfafnl3lk233412
CSeq: 8 OPTIONS
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw8
Content-Length: 0

INVITE sip:joe@{target} SIP/2.0
t: sip:joe@{target}
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: {name}-second.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # Semicolons in the user part of the Request-URI.
    "semiuri": ("3.1.1.9", """OPTIONS sip:user;par=u%40example.net@{target} SIP/2.0
To: sip:j_user@{target}
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: {name}.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
l: 0

"""),
    # Transports in the Via stack that nobody knows.
    "transports": ("3.1.1.10", """OPTIONS sip:user@{target} SIP/2.0
To: sip:user@{target}
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: {name}.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

"""),
    # A response nobody asked for, with an unusual reason phrase: no transaction, nothing to answer.
    "unreason": ("3.1.1.12", """SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435
Via: SIP/2.0/UDP {via};branch=z9hG4bK-unreason
Call-ID: {name}.asdfasdoeoi2323-asdfwrn23-asd834rk423
CSeq: 1353 INVITE
From: <sip:user@{target}>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0

"""),
    # ------------------------------------------------------------ 3.1.2 invalid messages
    # Empty header parameters and Via values.
    "badinv01": ("3.1.2.1", """INVITE sip:user@{target} SIP/2.0
To: sip:j.user@{target}
From: sip:caller@example.net;;tag=134161461246
Max-Forwards: 7
Call-ID: {name}.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP {via};;,;,,
Contact: "Joe" <sip:joe@example.org>;;;;
Content-Length: {len}
Content-Type: application/sdp

{sdp}"""),
    # Content-Length larger than the message.
    "clerr": ("3.1.2.2", """INVITE sip:user@{target} SIP/2.0
Max-Forwards: 80
To: sip:j.user@{target}
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: {name}.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

{sdp}"""),
    # Negative Content-Length.
    "ncl": ("3.1.2.3", """INVITE sip:user@{target} SIP/2.0
Max-Forwards: 254
To: sip:j.user@{target}
From: sip:caller@example.net;tag=32394234
Call-ID: {name}.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: -999

{sdp}"""),
    # Overlarge values in scalar fields.
    "scalar02": ("3.1.2.5", """REGISTER sip:{target} SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Max-Forwards: 300
From: sip:example.com?Route=%3Csip:sip.example.com%3E;tag=3
To: sip:user@{target}
Call-ID: {name}.05h0isndaksdj
CSeq: 36893488147419103232 REGISTER
Contact: <sip:user@host129.example.com>;expires=280297596632815
Expires: 1293840120938465029394829
Content-Length: 0

"""),
    # An unterminated quoted string in a display name.
    "quotbal": ("3.1.2.7", """INVITE sip:user@{target} SIP/2.0
To: "Mr. J. User <sip:j.user@{target}>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: {name}.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # A Request-URI enclosed in <>.
    "ltgtruri": ("3.1.2.8", """INVITE <sip:user@{target}> SIP/2.0
To: sip:user@{target}
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: {name}.1@0ha0isndaksdj
CSeq: 1 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # LWS inside the Request-URI.
    "lwsruri": ("3.1.2.9", """INVITE sip:user@{target}; lr SIP/2.0
To: sip:user@{target};tag=3xfe-9921883-z9f
From: sip:caller@example.net;tag=231413434
Max-Forwards: 5
Call-ID: {name}.2@0ha0isndaksdj
CSeq: 2130706432 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # Several SP between the elements of the Request-Line.
    "lwsstart": ("3.1.2.10", """INVITE  sip:user@{target}  SIP/2.0
Max-Forwards: 8
To: sip:user@{target}
From: sip:caller@example.net;tag=8814
Call-ID: {name}.0ha0isndaksdjaisd9f8r3r
CSeq: 1 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # Trailing SP after the Request-Line.
    "trws": ("3.1.2.11", """OPTIONS sip:remote-target@{target} SIP/2.0  
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Max-Forwards: 70
From: <sip:remote-target@{target}>;tag=9876
To: <sip:remote-target@{target}>
Call-ID: {name}.0ha0isndaksdjosdf44r5qek
CSeq: 1 OPTIONS
l: 0

"""),
    # Escaped headers in the Request-URI.
    "escruri": ("3.1.2.12", """INVITE sip:user@{target}?Route=%3Csip:example.com%3E SIP/2.0
To: sip:user@{target}
From: sip:caller@example.net;tag=341518
Max-Forwards: 7
Contact: <sip:caller@host39923.example.net>
Call-ID: {name}.0ha0isndaksdjweiafasdkf
CSeq: 17766 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # Spaces inside <> of a name-addr.
    "badaspec": ("3.1.2.14", """OPTIONS sip:user@{target} SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Max-Forwards: 70
From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=43
To: "Watson, Thomas" < sip:t.watson@{target} >
Call-ID: {name}.31415@c.example.com
CSeq: 3 OPTIONS
l: 0

"""),
    # An unquoted comma in a display name.
    "baddn": ("3.1.2.15", """OPTIONS sip:t.watson@{target} SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Max-Forwards: 70
From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To: Watson, Thomas <sip:t.watson@{target}>
Call-ID: {name}.31417@c.example.com
CSeq: 3 OPTIONS
l: 0

"""),
    # A SIP version that does not exist.
    "badvers": ("3.1.2.16", """OPTIONS sip:t.watson@{target} SIP/7.0
Via: SIP/7.0/UDP {via};branch=z9hG4bKkdjuw
Max-Forwards: 70
From: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To: T. Watson <sip:t.watson@{target}>
Call-ID: {name}.31417@c.example.com
CSeq: 1 OPTIONS
l: 0

"""),
    # The CSeq method differs from the request's method.
    "mismatch01": ("3.1.2.17", """OPTIONS sip:user@{target} SIP/2.0
To: sip:j.user@{target}
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: {name}.0ha0isndaksdj
CSeq: 8 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
l: 0

"""),
    # A response with an overlarge status code, unasked for.
    "bigcode": ("3.1.2.19", """SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP {via};branch=z9hG4bK-bigcode
Call-ID: {name}.0ha0isndaksdj
CSeq: 8 INVITE
From: sip:user@{target};tag=3
To: sip:user@example.net;tag=9
Content-Length: 0

"""),
    # ------------------------------------------------------------ 3.3 transaction layer
    # An RFC 2543 client: no magic cookie in the branch.
    "inv2543": ("3.3.2", """INVITE sip:UserB@{target} SIP/2.0
Via: SIP/2.0/UDP {via}
Max-Forwards: 70
From: <sip:UserA@example.com>;tag=1
To: <sip:UserB@{target}>
Call-ID: {name}.987@sip.example.com
CSeq: 1 INVITE
Contact: <sip:UserA@127.0.0.1>
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # ------------------------------------------------------------ 3.4 application layer
    # Missing From, To and Max-Forwards (the Call-ID is kept here so that an answer can be matched).
    "insuf": ("3.4.3", """INVITE sip:user@{target} SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Call-ID: {name}.0ha0isndaksdj
Content-Type: application/sdp
l: {len}

{sdp}"""),
    # A Request-URI scheme nobody knows.
    "unkscm": ("3.3.1", """OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: sip:user@{target}
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: {name}.0ha0isndaksdj
CSeq: 3923239 OPTIONS
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
l: 0

"""),
    # A To header with a scheme nobody knows.
    "unksm2": ("3.3.3", """REGISTER sip:{target} SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: {name}.0ha0isndaksdj
CSeq: 234902 REGISTER
Max-Forwards: 70
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Contact: <name@127.0.0.1>
l: 0

"""),
    # An extension required that nobody supports.
    "bext01": ("3.3.4", """INVITE sip:user@{target} SIP/2.0
To: sip:j_user@{target}
From: sip:caller@example.net;tag=242etr
Max-Forwards: 6
Call-ID: {name}.0ha0isndaksdj
Require: nothingSupportedHere
CSeq: 8 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Contact: <sip:caller@127.0.0.1>
Content-Type: application/sdp
Content-Length: {len}

{sdp}"""),
    # A body of a type nobody understands.
    "invut": ("3.3.6", """INVITE sip:user@{target} SIP/2.0
Contact: <sip:caller@host5.example.net>
To: sip:j.user@{target}
From: sip:caller@example.net;tag=8392034
Max-Forwards: 70
Call-ID: {name}.0ha0isndaksdjadsfij34n23d
CSeq: 235448 INVITE
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/unknownformat
Content-Length: 40

<audio>
 <pcmu port="443"/>
</audio>
"""),
    # Unknown method whose CSeq method differs.
    "mismatch02": ("3.1.2.18", """NEWMETHOD sip:user@{target} SIP/2.0
To: sip:j.user@{target}
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: {name}.0ha0isndaksdj
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Content-Type: application/sdp
l: {len}

{sdp}"""),
    # Several values in headers that take one (RFC 4475 §3.1.2.6 "mcl01" and the like).
    "multi01": ("3.1.2.6", """INVITE sip:user@{target} SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 122 INVITE
To: sip:user@{target}
From: sip:caller@example.net;tag=3413415
To: sip:other@example.net
From: sip:caller@example.org;tag=2923420123
Content-Type: application/sdp
l: {len}
Call-ID: {name}.0ha0isndaksdjke3kna
Contact: <sip:caller@127.0.0.1>
Max-Forwards: 5

{sdp}"""),
    # Two Content-Length headers.
    "mcl01": ("3.1.2.4", """OPTIONS sip:user@{target} SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bKkdjuw
To: sip:j.user@{target}
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: {name}.0ha0isndaksdj
CSeq: 8 OPTIONS
Content-Length: 0
Content-Length: 3

"""),
}


def message(name: str, via: str, target: str, transport: str = "UDP", call_id: str | None = None) -> bytes:
    """The message `name`, its top Via naming `via` (over `transport`), addressed to `target`;
    its Call-ID starts with `call_id` (default: the name)."""
    _, text = MESSAGES[name]
    sdp = SDP
    text = _crlf(text)
    if transport != "UDP":
        text = text.replace("SIP/2.0/UDP {via}", f"SIP/2.0/{transport} {{via}}").replace(
            " /UDP\r\n    {via}", f" /{transport}\r\n    {{via}}"
        )
    # The RFC reuses one branch in many messages: here each is a transaction of its own.
    tag = call_id or name
    text = text.replace("branch=z9hG4bK", f"branch=z9hG4bK-{tag}-")
    out = text.format(via=via, target=target, name=tag, len=len(sdp.encode()), sdp=sdp)
    return out.encode("utf-8")
