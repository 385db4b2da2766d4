"""The phrases of prompt injection: instruction overrides, system-prompt extraction, role-play jailbreaks,
fake chat markup and markdown-image exfiltration, in English and in Spanish, French, German, Portuguese,
Italian, Chinese, Russian and Japanese. `rules.check_injection` reads them on every view of a text
(`normalize.views`), so they are written for plain, normalised text.
"""

from __future__ import annotations

import re

_F = re.IGNORECASE


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# -- English -------------------------------------------------------------------------------------------------

_EARLIER = _any(
    "previous",
    "prior",
    "preceding",
    "above",
    "earlier",
    "former",
    "original",
    "initial",
    "system",
    "safety",
    "old",
    "existing",
    "current",
    "given",
)
_ORDERS = _any(
    "instructions?",
    "prompts?",
    "rules",
    "directions?",
    "directives?",
    "guidelines",
    "guardrails",
    "constraints",
    "context",
    "messages?",
    "commands?",
    "orders",
    "polic(?:y|ies)",
    "programming",
)
_DROP = _any(
    "ignore",
    "disregard",
    "forget",
    "override",
    "bypass",
    "skip",
    "drop",
    "discard",
    "abandon",
    "ditch",
    "scratch",
    "set aside",
    "throw away",
    "cancel",
    "do not follow",
    "don'?t follow",
    "stop following",
    "stop obeying",
    "no longer follow",
)
_QUANT = r"(?:(?:all|any|each|every|the|your|my|these|those|of|whatever)\s+){0,3}"
_ADJ = r"(?:(?:full|entire|original|initial|hidden|secret|exact|complete|internal|whole)\s+)*"

ENGLISH: list[tuple[str, str]] = [
    ("injection.override", rf"\b{_DROP}\s+{_QUANT}(?:{_EARLIER}\s+)+{_ORDERS}"),
    (
        "injection.override",
        rf"\b{_DROP}\s+(?:all\s+of\s+|any\s+of\s+)?(?:your|the|my)\s+(?:{_EARLIER}\s+)?{_ORDERS}",
    ),
    (
        "injection.override",
        rf"\b{_DROP}\s+(?:all\s+|everything\s+|anything\s+|what(?:ever)?\s+(?:was|is|you\s+were)\s+"
        rf"(?:said|told|written|given)\s+)?(?:above|before|earlier|so\s+far|previously|up\s+to\s+now)\b",
    ),
    (
        "injection.override",
        rf"\b{_DROP}\s+(?:the\s+)?(?:instructions?|rules|guidelines)\s+(?:you\s+(?:were|have\s+been)\s+"
        rf"given|above|before)",
    ),
    (
        "injection.override",
        rf"\b(?:the\s+)?{_EARLIER}\s+{_ORDERS}\s+(?:are|is)\s+(?:now\s+)?(?:void|null|outdated|obsolete|"
        rf"cancel+ed|revoked|invalid|no\s+longer\s+(?:valid|apply|applies|in\s+effect))",
    ),
    ("injection.override", rf"\bnew\s+{_ORDERS}\s+(?:supersede|override|replace|take\s+precedence\s+over)"),
    ("injection.override", r"\b(?:system|admin|developer|security)\s+override\b"),
    (
        "injection.override",
        rf"\b(?:do\s+not|don'?t|never)\s+(?:follow|obey|listen\s+to)\s+(?:your|the)\s+(?:{_EARLIER}\s+)?{_ORDERS}",
    ),
    (
        "injection.role_play",
        r"\b(?:you\s+are\s+(?:now\s+)?(?:DAN|STAN|DUDE|AIM)\b|do\s+anything\s+now|strive\s+to\s+avoid\s+norms"
        r"|(?:developer|god|jailbreak|unrestricted|dan|debug)\s+mode\s+(?:is\s+)?(?:now\s+)?"
        r"(?:on|enabled|activated|engaged)|(?:enable|activate|enter|turn\s+on)\s+(?:the\s+)?"
        r"(?:developer|god|jailbreak|dan|unrestricted)\s+mode)",
    ),
    (
        "injection.role_play",
        r"\b(?:pretend|act|behave|roleplay|role-play|imagine|respond)\s+(?:to\s+be\s+|as\s+if\s+|as\s+|that\s+|"
        r"you\s+are\s+|like\s+)[^.\n]{0,80}?\b(?:no|without|free\s+of|free\s+from|not\s+bound\s+by|"
        r"ignores?)\s+(?:any\s+|all\s+)?(?:restrictions|rules|limits|limitations|filters|guidelines|"
        r"censorship|ethics|ethical\s+guidelines|morals|policies|content\s+polic(?:y|ies))",
    ),
    (
        "injection.role_play",
        r"\b(?:unrestricted|unfiltered|uncensored|jailbroken)\s+(?:AI|assistant|model|chatbot|mode)\b",
    ),
    (
        "injection.role_play",
        r"\byou\s+(?:are\s+no\s+longer|aren't|are\s+not)\s+(?:bound|restricted|limited)\s+by\b"
        r"|\byou\s+(?:now\s+)?(?:have|has)\s+no\s+(?:restrictions|rules|limits|filters|guidelines|content\s+polic)"
        r"|\b(?:ignore|without)\s+(?:all\s+|any\s+)?(?:safety|content)\s+(?:rules|filters|policies|guidelines)\b"
        r"|\brespond\s+without\s+(?:any\s+)?(?:content\s+)?(?:filters|restrictions|censorship)"
        r"|\b(?:is|are|be|being)\s+not\s+bound\s+by\s+(?:any\s+)?(?:rules|guidelines|restrictions|"
        r"policies|ethic)",
    ),
    (
        "injection.exfiltration",
        r"\b(?:reveal|print|repeat|output|leak|dump|display|show|tell|give|share|disclose|recite|"
        r"write\s+out|copy|paste|list)\s+(?:me\s+|us\s+)?(?:all\s+of\s+|the\s+(?:text|contents?)\s+of\s+)?"
        rf"(?:your\s+{_ADJ}(?:system\s+prompt|system\s+message|prompt|instructions|developer\s+message|"
        rf"pre-?prompt|polic(?:y|ies))|the\s+{_ADJ}(?:system\s+prompt|developer\s+message|pre-?prompt|"
        r"(?:hidden|initial|original|secret)\s+(?:instructions|polic(?:y|ies))))",
    ),
    (
        "injection.exfiltration",
        r"\b(?:repeat|print|output|recite|copy)\s+(?:everything|all|the\s+(?:text|words|lines))\s+"
        r"(?:above|before\s+this|starting\s+with)",
    ),
    (
        "injection.exfiltration",
        r"\bwhat\s+(?:were|are)\s+(?:the\s+|your\s+)?(?:exact\s+|original\s+|initial\s+|hidden\s+)*"
        r"instructions\s+you\s+(?:were|have\s+been)\s+given",
    ),
    (
        "injection.exfiltration",
        r"\b(?:tell|show|give)\s+me\s+(?:your|the)\s+(?:initial|original|hidden|system)\s+instructions",
    ),
    (
        "injection.delimiter",
        r"<\|(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\|>|\[/?INST\]"
        r"|<<\s*/?SYS\s*>>",
    ),
    (
        "injection.delimiter",
        r"<\s*/\s*(?:task|user|user_input|input|context|document|data|query|human)\s*>\s*"
        r"<\s*(?:system|developer|assistant|admin|root|instructions?)\b",
    ),
    (
        "injection.delimiter",
        r"<\s*(?:system|developer|admin)\b[^>\n]{0,80}>[^<]{3,}<\s*/\s*(?:system|developer|admin)\s*>",
    ),
    (
        "injection.delimiter",
        r"(?:^|\n)\s*#{2,}\s*(?:system|developer)\s*(?:prompt|message)?\s*:"
        r"|\b(?:begin|start)\s+(?:of\s+)?(?:the\s+)?(?:new\s+)?system\s+(?:prompt|message|instructions)\b"
        r"|\bend\s+of\s+(?:the\s+)?user\s+(?:input|message|prompt)\b",
    ),
    (
        "injection.exfiltration_link",
        r"!\[[^\]\n]{0,100}\]\(\s*<?https?://[^\s)]*\?[^\s)]*=[^\s)]*"
        r"(?:\{|\$|\[|%7B|%24|[A-Z]{2,}_[A-Z]{2,})[^\s)]*\)",
    ),
    (
        "injection.exfiltration_link",
        r"(?:markdown\s+image|image|!\[[^\]\n]{0,100}\]\()[^\n]{0,120}?https?://\S+\?\S*=[^\n]{0,60}?"
        r"\b(?:followed\s+by|append(?:ed)?|replac\w+|fill(?:ed)?\s+(?:in|with)|with\s+the)\b"
        r"[^\n]{0,60}?\b(?:conversation|chat|history|system\s+prompt|instructions|password|"
        r"secret|api\s+key|token|credentials|messages)",
    ),
]

# -- other languages -----------------------------------------------------------------------------------------

OTHER: list[tuple[str, str]] = [
    # Spanish
    (
        "injection.override",
        r"\b(?:ignora|ignore|ignoren|olvida|olvide|olviden|omite|descarta|desobedece)\w*\s+"
        r"(?:todas?\s+|todo\s+)?(?:las\s+|tus\s+|sus\s+|los\s+)?(?:instrucciones|indicaciones|reglas|"
        r"órdenes|directrices|normas)",
    ),
    (
        "injection.exfiltration",
        r"\b(?:revela|muestra|imprime|dime|enséñame|repite|escribe)\w*\s+(?:tu|el|su|tus)\s+"
        r"(?:prompt|mensaje|indicaciones|instrucciones)\s+(?:del|de)\s+sistema",
    ),
    (
        "injection.role_play",
        r"\b(?:ya\s+)?no\s+tienes\s+(?:ninguna\s+|más\s+)?(?:restricci[óo]n|restricciones|l[íi]mites|reglas)",
    ),
    # French
    (
        "injection.override",
        r"\b(?:ignore|ignorez|ignorer|oublie|oubliez|oublier|ne\s+tiens?\s+pas\s+compte\s+de|"
        r"ne\s+tenez\s+pas\s+compte\s+de)\w*\s+(?:toutes?\s+)?(?:les\s+|tes\s+|vos\s+|des\s+)?"
        r"(?:instructions|consignes|règles|directives|indications)",
    ),
    (
        "injection.exfiltration",
        r"\b(?:révèle|révélez|affiche|affichez|montre|montrez|donne|donnez|répète|répétez)\w*"
        r"(?:-moi)?\s+(?:ton|votre|le|tes|vos)\s+(?:prompt|message|instructions|consignes)\s+"
        r"(?:système|du\s+système|de\s+système|initiales?)",
    ),
    (
        "injection.role_play",
        r"\btu\s+n['’]as\s+(?:plus\s+)?(?:aucune?|de)\s+(?:restriction|limite|règle)"
        r"|\bvous\s+n['’]avez\s+(?:plus\s+)?(?:aucune?)\s+(?:restriction|limite|règle)",
    ),
    # German
    (
        "injection.override",
        r"\b(?:ignorier|ignoriere|ignorieren|vergiss|vergessen\s+sie|missachte|missachten\s+sie)\w*\s+"
        r"(?:alle\s+|sämtliche\s+)?(?:vorherigen\s+|bisherigen\s+|obigen\s+|früheren\s+|deine\s+|"
        r"ihre\s+|die\s+)*(?:Anweisungen|Instruktionen|Regeln|Vorgaben|Befehle|Richtlinien)",
    ),
    (
        "injection.exfiltration",
        r"\b(?:zeig|zeige|gib|nenne|verrate|wiederhole|schreib)\w*\s+(?:mir\s+)?(?:deinen|den|"
        r"deine|die|Ihren)\s+(?:vollständigen\s+|kompletten\s+)?(?:System-?[Pp]rompt|"
        r"System-?[Aa]nweisungen|System-?[Nn]achricht)",
    ),
    (
        "injection.role_play",
        r"\b(?:du\s+hast|hast\s+du)\s+(?:jetzt\s+|nun\s+|ab\s+jetzt\s+)?keine\s+"
        r"(?:Einschränkungen|Regeln|Grenzen|Beschränkungen)",
    ),
    # Portuguese
    (
        "injection.override",
        r"\b(?:ignore|ignora|ignorem|esqueça|esqueca|esqueçam|desconsidere|desconsiderem)\w*\s+"
        r"(?:todas?\s+)?(?:as\s+|suas\s+|tuas\s+|os\s+)?(?:instruções|instrucoes|regras|orientações|"
        r"indicações|ordens)",
    ),
    (
        "injection.exfiltration",
        r"\b(?:revele|revela|mostre|mostra|exiba|diga|repita)\w*(?:-me)?\s+(?:o\s+)?(?:seu\s+|teu\s+)?"
        r"(?:prompt|mensagem|instruções)\s+(?:do|de)\s+sistema",
    ),
    (
        "injection.role_play",
        r"\bvocê\s+(?:agora\s+)?não\s+tem\s+(?:mais\s+)?(?:nenhuma\s+)?(?:restrição|restrições|limite|regras)",
    ),
    # Italian
    (
        "injection.override",
        r"\b(?:ignora|ignorate|dimentica|dimenticate|trascura)\w*\s+(?:tutte\s+)?(?:le\s+)?(?:tue\s+|"
        r"vostre\s+)?(?:istruzioni|regole|indicazioni|direttive)",
    ),
    (
        "injection.exfiltration",
        r"\b(?:rivela|mostra|mostrami|stampa|dimmi|ripeti)\w*\s+(?:il\s+)?(?:tuo\s+)?"
        r"(?:prompt|messaggio)\s+di\s+sistema",
    ),
    (
        "injection.role_play",
        r"\bnon\s+hai\s+(?:più\s+)?(?:alcuna\s+|nessuna\s+)?(?:restrizione|restrizioni|limite|limiti|regola)",
    ),
    # Chinese
    (
        "injection.override",
        r"(?:忽略|无视|忘记|忘掉|不要理会|不要遵守|跳过)(?:之前|以上|先前|前面|上面|所有|你的|全部)?"
        r"(?:的)?(?:所有|全部)?(?:的)?(?:指令|指示|说明|提示|规则|要求|命令)",
    ),
    (
        "injection.exfiltration",
        r"(?:显示|输出|泄露|告诉我|打印|展示|给我|透露)(?:一下|完整地|完整的)?(?:你的)?(?:完整的)?"
        r"系统(?:提示|指令|消息)",
    ),
    ("injection.exfiltration", r"(?:你的)?系统提示(?:词)?(?:完整地|逐字)?(?:输出|显示|告诉)"),
    ("injection.role_play", r"你(?:现在)?(?:没有|不受)任何(?:限制|约束|规则)"),
    # Russian
    (
        "injection.override",
        r"(?:игнорируй|игнорируйте|забудь|забудьте|не\s+обращай\s+внимания\s+на|проигнорируй)\w*\s+"
        r"(?:все\s+)?(?:предыдущие\s+|прошлые\s+|прежние\s+|свои\s+|твои\s+|ваши\s+)?"
        r"(?:инструкции|указания|правила|команды|ограничения)",
    ),
    (
        "injection.exfiltration",
        r"(?:покажи|покажите|раскрой|выведи|напиши|повтори|скажи)\w*\s+(?:мне\s+)?(?:свой\s+|твой\s+|"
        r"ваш\s+)?системн\w+\s+(?:промпт|инструкци\w*|запрос|сообщени\w*)",
    ),
    (
        "injection.role_play",
        r"у\s+тебя\s+(?:теперь\s+|больше\s+)?нет\s+(?:никаких\s+)?(?:ограничений|правил)",
    ),
    # Japanese
    (
        "injection.override",
        r"(?:以前|前|上記|これまで|今まで|先ほど)の(?:すべての|全ての)?(?:指示|命令|ルール|指令)を"
        r"(?:すべて|全て)?(?:無視|忘れ)",
    ),
    ("injection.override", r"(?:指示|命令|ルール)を(?:すべて|全て)?(?:無視|忘れ)"),
    (
        "injection.exfiltration",
        r"システム(?:プロンプト|メッセージ|指示)を(?:そのまま|全部|すべて)?(?:表示|教え|出力|見せ)",
    ),
    ("injection.role_play", r"(?:あなたには)?(?:何の)?制限が(?:ありません|ない)"),
]

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (rule, re.compile(pattern, _F)) for rule, pattern in ENGLISH + OTHER
]
ANCHORS = tuple(
    """
ignor disregard forget overrid bypass skip drop discard abandon ditch scratch aside throw cancel follow obey
listen void null outdated obsolete revoked invalid no longer supersede replace precedence dan stan dude aim
anything now norms mode unrestricted unfiltered uncensored jailbr bound restrict limit filter guideline censor
ethic moral polic rules prompt instruction message above before this starting with <| [inst [/inst << </
<system <developer <admin
## system user ![ image olvid omit descart desobedec indicac regla orden directri norma revela muestra dime
restricci oubli tiens tenez consign règle directive indication révèl affich montr donne répét restriction
n'as n’as vergiss missacht anweisung instruktion regel vorgabe befehl richtlinie zeig gib nenne verrate
einschränk grenz beschränk esqueç esquec desconsider instruç regras orientaç indicaç ordens revele mostre
exiba
restriç dimentic trascur istruzion regol indicazion direttiv rivela mostra stampa dimmi ripeti restrizion
忽略 无视 忘记 忘掉 不要 跳过 指令 指示 说明 提示 规则 要求 命令 系统 限制 约束 игнор забуд не обращай
инструкц указан
правил команд ограничен системн покаж раскро выведи ルール 指示 命令 無視 忘れ システム 制限
""".split()
)
"""Words every phrase needs one of: a text with none of them is not read rule by rule (most texts are not)."""


def may_match(text: str) -> bool:
    """Whether some phrase could be in `text` (a substring check per anchor: cheap)."""
    low = text.casefold()
    return any(anchor in low for anchor in ANCHORS)
