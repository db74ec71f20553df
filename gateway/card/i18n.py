# ruff: noqa: RUF001  (the Russian words are Cyrillic, the multiplier sign is U+00D7)
"""The card page's words in English and Russian, chosen by a cookie, else Accept-Language.

Plain dictionaries: two languages and one page do not need gettext catalogues. Every key
exists in both (a unit test holds them equal), so a missing word is a test failure, not a
blank on the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

LOCALES = ("en", "ru")
DEFAULT_LOCALE = "en"
LANG_COOKIE = "card_lang"

EN: dict[str, str] = {
    "title": "Your Coalition card",
    "skip": "Skip to content",
    "switch_to": "Русский",
    "switch_label": "Язык: русский",
    "sign_out": "Sign out",
    "sign_in": "Sign in",
    "sign_in_intro": "Open your card from a partner's app, or get a one-time code by email.",
    "email": "Email",
    "send_code": "Email me a code",
    "code_sent": "If {email} belongs to a card, we have sent it a 6-digit code. "
    "It works for 10 minutes.",
    "code": "Code",
    "code_hint": "6 digits",
    "other_address": "Use another address",
    "error": "Something went wrong",
    "token_invalid": "This sign-in link is not valid.",
    "token_expired": "This sign-in link has expired: open your card again from the partner's app.",
    "token_spent": "This sign-in link has already been used: open your card again from the "
    "partner's app, or sign in with a code.",
    "code_invalid": "That code is not right or has expired.",
    "code_tries_exhausted": "Too many tries for this code: ask for a new one.",
    "code_rate_limited": "Too many codes were sent to this address: try again in an hour.",
    "csrf_invalid": "This form has expired. Please try again.",
    "email_invalid": "Enter your email address.",
    "session_ended": "Your session has ended. Please sign in again.",
    "form_invalid": "The form was not filled in correctly.",
    "back_to_card": "Back to my card",
    "card_number": "Card number",
    "qr_title": "QR code of card {number}",
    "qr_hint": "Show this code at the till.",
    "no_active_card": "You have no active card: ask a partner's staff for a new one.",
    "balance": "Balance",
    "points": "{n} points",
    "points_one": "{n} point",
    "points_few": "{n} points",
    "held": "On hold",
    "debt": "Owed after a refund",
    "expiring": "Expiring soon",
    "expiring_none": "No points expire in the next 90 days.",
    "expiring_lot": "{points} on {date}",
    "expiring_within": "within {days} days",
    "tier": "Tier",
    "tier_member": "Member",
    "tier_silver": "Silver",
    "tier_gold": "Gold",
    "tier_progress": "Progress to {tier}",
    "tier_to_next": "{points} more, or {money} more spend, to reach {tier}.",
    "tier_top": "You have the highest tier.",
    "tier_earned": "{points} earned in the last 12 months",
    "history": "History",
    "history_empty": "No activity yet.",
    "history_older": "Older activity",
    "history_newest": "Newest activity",
    "network": "Coalition",
    "kind_earn": "Earned",
    "kind_goodwill": "Goodwill credit",
    "kind_goodwill_debit": "Goodwill correction",
    "kind_burn": "Redeemed",
    "kind_hold": "Held",
    "kind_capture": "Redeemed (held)",
    "kind_void": "Hold released",
    "kind_hold_release": "Hold expired",
    "kind_expiry": "Expired",
    "kind_refund_earn": "Refund",
    "kind_refund_burn": "Redemption refunded",
    "kind_transfer": "Cards merged",
    "kind_settlement_payment": "Settlement",
    "offers": "Offers",
    "offers_none": "No offers right now.",
    "challenges": "Challenges",
    "challenges_none": "No challenges right now.",
    "challenge_progress": "{progress} of {goal}",
    "challenge_progress_label": "Progress in {name}",
    "challenge_reward": "+{points}",
    "challenge_until": "until {date}",
    "challenge_done": "Completed",
    "challenge_kind_distinct_partners": "shop at {goal} different partners",
    "challenge_kind_purchases_within": "{goal} purchases within {weeks} weeks",
    "challenge_kind_first_at_new_partner": "a first purchase at a partner new to you",
    "badges": "Badges",
    "badges_none": "Complete a challenge to earn a badge.",
    "badge_since": "earned {date}",
    "badge_revoked": "withdrawn {date} (a purchase was refunded)",
    "offer_multiplier": "×{factor} points",
    "offer_bonus": "+{points}",
    "offer_until": "until {date}",
    "offer_category": "on {category}",
    "offer_basket": "from {money}",
    "offer_first": "first purchase only",
    "offer_everywhere": "at every partner",
    "referral": "Invite a friend",
    "referral_text": "Your code is {code}. When a friend enrolls with it and shops, "
    "you both get bonus points.",
    "share_link": "Share link",
    "invite_title": "You are invited",
    "invite_text": "Give the code {code} when you enroll at any Coalition partner: "
    "after your first purchase you and your friend both get bonus points.",
    "consent": "Partners that may contact you",
    "consent_intro": "Choose which partners may tell you about your points, such as points "
    "about to expire.",
    "consent_granted": "Allowed",
    "consent_refused": "Not allowed",
    "consent_allow": "Allow {partner}",
    "consent_stop": "Stop {partner}",
    "consent_none": "No partners yet.",
    "consent_saved": "Saved.",
    "nps": "How likely are you to recommend Coalition to a friend?",
    "nps_low": "0 = not at all",
    "nps_high": "10 = extremely likely",
    "nps_comment": "Anything to add? (optional)",
    "nps_send": "Send",
    "nps_thanks": "Thank you for your answer.",
    "erasure": "Delete my data",
    "erasure_text": "You can ask us to delete your personal data. Your cards stop working.",
    "erasure_start": "Ask to delete my data",
    "erasure_confirm_title": "Delete your data?",
    "erasure_confirm_text": "We delete your birth date, phone, email, consents, survey answers "
    "and your referral code, and block your cards. Your {points} can no longer be used. "
    "This cannot be undone.",
    "erasure_check": "I understand that this cannot be undone",
    "erasure_do": "Delete my data",
    "cancel": "Cancel",
    "unsubscribe_title": "Unsubscribe from emails",
    "unsubscribe_text": "You will no longer get notices about expiring points, tiers or offers. "
    "Sign-in codes and receipts you ask for still arrive.",
    "unsubscribe_already": "You are already unsubscribed: nothing more to do.",
    "unsubscribe_do": "Unsubscribe",
    "unsubscribed_title": "You are unsubscribed",
    "unsubscribed_text": "We will send you no more notices. You can turn them back on from your "
    "card page at any time.",
    "unsubscribe_token_invalid": "This unsubscribe link is not valid. Open the link from the "
    "email again, or sign in to your card to change what you receive.",
    "erased_title": "Your data has been deleted",
    "erased_text": "Your cards are blocked and your personal data is gone. Thank you for having "
    "been with us.",
}

RU: dict[str, str] = {
    "title": "Ваша карта Coalition",
    "skip": "К содержимому",
    "switch_to": "English",
    "switch_label": "Language: English",
    "sign_out": "Выйти",
    "sign_in": "Войти",
    "sign_in_intro": "Откройте карту из приложения партнёра или получите одноразовый код "
    "по электронной почте.",
    "email": "Электронная почта",
    "send_code": "Прислать код",
    "code_sent": "Если адрес {email} привязан к карте, мы отправили на него код из 6 цифр. "
    "Он действует 10 минут.",
    "code": "Код",
    "code_hint": "6 цифр",
    "other_address": "Другой адрес",
    "error": "Что-то пошло не так",
    "token_invalid": "Эта ссылка для входа недействительна.",
    "token_expired": "Срок действия ссылки истёк: откройте карту ещё раз из приложения партнёра.",
    "token_spent": "Эта ссылка для входа уже использована: откройте карту ещё раз из "
    "приложения партнёра или войдите по коду.",
    "code_invalid": "Код неверный или устарел.",
    "code_tries_exhausted": "Слишком много попыток для этого кода: запросите новый.",
    "code_rate_limited": "На этот адрес отправлено слишком много кодов: попробуйте через час.",
    "csrf_invalid": "Форма устарела. Попробуйте ещё раз.",
    "email_invalid": "Введите адрес электронной почты.",
    "session_ended": "Сеанс завершён. Войдите ещё раз.",
    "form_invalid": "Форма заполнена неверно.",
    "back_to_card": "К моей карте",
    "card_number": "Номер карты",
    "qr_title": "QR-код карты {number}",
    "qr_hint": "Покажите этот код на кассе.",
    "no_active_card": "У вас нет действующей карты: попросите новую у сотрудников партнёра.",
    "balance": "Баланс",
    "points": "{n} баллов",
    "points_one": "{n} балл",
    "points_few": "{n} балла",
    "held": "Заблокировано",
    "debt": "Долг после возврата",
    "expiring": "Скоро сгорят",
    "expiring_none": "В ближайшие 90 дней баллы не сгорают.",
    "expiring_lot": "{points} — {date}",
    "expiring_within": "в течение {days} дней",
    "tier": "Уровень",
    "tier_member": "Участник",
    "tier_silver": "Серебряный",
    "tier_gold": "Золотой",
    "tier_progress": "Путь к уровню «{tier}»",
    "tier_to_next": "Ещё {points} или покупки на {money} до уровня «{tier}».",
    "tier_top": "У вас высший уровень.",
    "tier_earned": "{points} за последние 12 месяцев",
    "history": "История",
    "history_empty": "Операций пока нет.",
    "history_older": "Более ранние операции",
    "history_newest": "Последние операции",
    "network": "Coalition",
    "kind_earn": "Начислено",
    "kind_goodwill": "Компенсация",
    "kind_goodwill_debit": "Исправление компенсации",
    "kind_burn": "Списано",
    "kind_hold": "Заблокировано",
    "kind_capture": "Списано (блокировка)",
    "kind_void": "Блокировка снята",
    "kind_hold_release": "Блокировка истекла",
    "kind_expiry": "Сгорело",
    "kind_refund_earn": "Возврат покупки",
    "kind_refund_burn": "Возврат списания",
    "kind_transfer": "Карты объединены",
    "kind_settlement_payment": "Расчёт",
    "offers": "Предложения",
    "offers_none": "Сейчас предложений нет.",
    "challenges": "Задания",
    "challenges_none": "Сейчас заданий нет.",
    "challenge_progress": "{progress} из {goal}",
    "challenge_progress_label": "Прогресс: {name}",
    "challenge_reward": "+{points}",
    "challenge_until": "до {date}",
    "challenge_done": "Выполнено",
    "challenge_kind_distinct_partners": "покупки у {goal} разных партнёров",
    "challenge_kind_purchases_within": "{goal} покупок за {weeks} нед.",
    "challenge_kind_first_at_new_partner": "первая покупка у нового для вас партнёра",
    "badges": "Значки",
    "badges_none": "Выполните задание, чтобы получить значок.",
    "badge_since": "получен {date}",
    "badge_revoked": "отозван {date} (покупку вернули)",
    "offer_multiplier": "×{factor} баллов",
    "offer_bonus": "+{points}",
    "offer_until": "до {date}",
    "offer_category": "на {category}",
    "offer_basket": "от {money}",
    "offer_first": "только первая покупка",
    "offer_everywhere": "у всех партнёров",
    "referral": "Пригласите друга",
    "referral_text": "Ваш код — {code}. Когда друг зарегистрируется с ним и совершит покупку, "
    "вы оба получите бонусные баллы.",
    "share_link": "Ссылка для друга",
    "invite_title": "Вас пригласили",
    "invite_text": "Назовите код {code} при регистрации у любого партнёра Coalition: после "
    "первой покупки вы и ваш друг получите бонусные баллы.",
    "consent": "Партнёры, которые могут писать вам",
    "consent_intro": "Выберите, какие партнёры могут сообщать вам о баллах, например о баллах, "
    "которые скоро сгорят.",
    "consent_granted": "Разрешено",
    "consent_refused": "Не разрешено",
    "consent_allow": "Разрешить: {partner}",
    "consent_stop": "Запретить: {partner}",
    "consent_none": "Партнёров пока нет.",
    "consent_saved": "Сохранено.",
    "nps": "Насколько вероятно, что вы порекомендуете Coalition другу?",
    "nps_low": "0 — точно нет",
    "nps_high": "10 — обязательно",
    "nps_comment": "Хотите что-то добавить? (необязательно)",
    "nps_send": "Отправить",
    "nps_thanks": "Спасибо за ответ.",
    "erasure": "Удалить мои данные",
    "erasure_text": "Вы можете попросить удалить ваши персональные данные. Карты перестанут "
    "работать.",
    "erasure_start": "Запросить удаление данных",
    "erasure_confirm_title": "Удалить ваши данные?",
    "erasure_confirm_text": "Мы удалим дату рождения, телефон, адрес почты, согласия, ответы на "
    "опросы и реферальный код и заблокируем карты. Ваши {points} больше нельзя будет "
    "использовать. Это действие необратимо.",
    "erasure_check": "Я понимаю, что это необратимо",
    "erasure_do": "Удалить мои данные",
    "cancel": "Отмена",
    "unsubscribe_title": "Отписаться от писем",
    "unsubscribe_text": "Вы больше не будете получать уведомления о сгорающих баллах, уровнях и "
    "предложениях. Коды входа и запрошенные вами письма по-прежнему придут.",
    "unsubscribe_already": "Вы уже отписаны: больше ничего делать не нужно.",
    "unsubscribe_do": "Отписаться",
    "unsubscribed_title": "Вы отписаны",
    "unsubscribed_text": "Мы больше не будем присылать уведомления. Их можно снова включить на "
    "странице карты в любой момент.",
    "unsubscribe_token_invalid": "Ссылка для отписки недействительна. Откройте ссылку из письма "
    "ещё раз или войдите в карту, чтобы выбрать, какие письма получать.",
    "erased_title": "Ваши данные удалены",
    "erased_text": "Карты заблокированы, персональные данные удалены. Спасибо, что были с нами.",
}

MESSAGES = {"en": EN, "ru": RU}
MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "ru": ["янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"],
}
CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "RUB": "₽"}


def from_accept_language(header: str | None) -> str:
    """The supported locale the browser prefers most (q-values honoured), else English."""
    best, best_q = DEFAULT_LOCALE, -1.0
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        language = tag.strip().lower().split("-")[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        # earlier entries win ties, as the header lists them by preference
        if language in LOCALES and q > 0 and q - position * 1e-6 > best_q:
            best, best_q = language, q - position * 1e-6
    return best


def choose(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LOCALES:
        return cookie
    return from_accept_language(accept_language)


class Words:
    """The words, numbers, dates and money of one locale, as the templates use them."""

    def __init__(self, locale: str) -> None:
        assert locale in LOCALES, locale
        self.locale = locale
        self._messages = MESSAGES[locale]

    def __call__(self, key: str, **values: Any) -> str:
        return self._messages[key].format(**values)

    def number(self, n: int) -> str:
        separator = "\u00a0" if self.locale == "ru" else ","
        return f"{n:,}".replace(",", separator)

    def points(self, n: int) -> str:
        return self(_points_key(self.locale, n), n=self.number(n))

    def date(self, moment: datetime) -> str:
        months = MONTHS[self.locale]
        return f"{moment.day} {months[moment.month - 1]} {moment.year}"

    def money(self, amount_minor: int, currency: str) -> str:
        whole, cents = divmod(abs(amount_minor), 100)
        sign = "-" if amount_minor < 0 else ""
        symbol = CURRENCY_SIGNS.get(currency, currency)
        if self.locale == "ru":
            return f"{sign}{self.number(whole)},{cents:02d}\u00a0{symbol}"
        return f"{sign}{symbol}{self.number(whole)}.{cents:02d}"

    def factor(self, bps: int) -> str:
        whole, rest = divmod(bps, 10_000)
        text = f"{whole}.{rest:04d}".rstrip("0").rstrip(".")
        return text.replace(".", ",") if self.locale == "ru" else text


def _points_key(locale: str, n: int) -> str:
    n = abs(n)
    if locale == "ru":
        if n % 10 == 1 and n % 100 != 11:
            return "points_one"
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return "points_few"
        return "points"
    return "points_one" if n == 1 else "points"
