"""The words of the public customer pages, in English and Russian."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your visit",
        "on_the_way": "{name} is on the way",
        "eta": "Expected arrival",
        "arrived": "{name} has arrived.",
        "no_position": "The position is not available right now.",
        "last_seen": "Position at",
        "map": "Where {name} is now",
        "your_address": "your address",
        "gone": "This link does not work any more.",
        "slow_down": "Too many requests from your network. Please try again in a minute.",
        "feedback_title": "How did the visit go?",
        "rating": "Your rating",
        "comment": "Comment (optional)",
        "send": "Send",
        "fix": "Please check the fields below.",
        "feedback_thanks": "Thank you for your feedback!",
        "feedback_done": "Thank you, we have your feedback for this visit already.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_ask": "Stop messages from {company} to {address}?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed": "Done: you will not get any more messages from us at this address.",
    },
    "ru": {
        "title": "Ваш визит",
        "on_the_way": "{name} уже в пути",
        "eta": "Ожидаемое время приезда",
        "arrived": "{name} уже на месте.",
        "no_position": "Местоположение сейчас недоступно.",
        "last_seen": "Положение на",
        "map": "Где сейчас {name}",
        "your_address": "ваш адрес",
        "gone": "Эта ссылка больше не действует.",
        "slow_down": "Слишком много запросов из вашей сети. Попробуйте через минуту.",
        "feedback_title": "Как прошёл визит?",
        "rating": "Ваша оценка",
        "comment": "Комментарий (необязательно)",
        "send": "Отправить",
        "fix": "Проверьте поля ниже.",
        "feedback_thanks": "Спасибо за отзыв!",
        "feedback_done": "Спасибо, ваш отзыв об этом визите уже получен.",
        "unsubscribe_title": "Отписка",
        "unsubscribe_ask": "Больше не присылать сообщения {company} на {address}?",
        "unsubscribe_button": "Отписаться",
        "unsubscribed": "Готово: мы больше не будем писать вам на этот адрес.",
    },
}


def texts_for(lang: str) -> dict[str, str]:
    """The page words in ``lang`` (English when we have none in it)."""
    return TEXTS.get(lang, TEXTS["en"])
