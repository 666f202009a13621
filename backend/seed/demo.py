"""``fieldcrm seed-demo``: the demo company "Kirill's Windows", a window fitter in Kazan.

Nine people (an admin, two managers leading a team each, two measurers, three installers and a
salesperson) and a few hundred customers -- private persons and some companies -- each with a
contact, a site at a plausible Kazan street address and a timeline of calls, visits, emails and
notes over the past ~90 days, authored by the customer's owner. Owners are the managers and the
field staff, so logging in as different users shows role visibility at work. The field staff
also get today's visits, weekly shifts and tracking phones (``backend.seed.visits``).

Deterministic: everything is drawn from ``random.Random(2026)``; the timeline is anchored at
today's date (UTC), so two runs on the same day write the same rows. Idempotent: the demo
organisation is found by its admin's email and deleted (``ON DELETE CASCADE`` takes everything
with it), then created again in the same transaction; ids change, the content does not.

The vocabulary (names, phone numbers, Kazan districts and streets) is shared with
``backend.seed.generate``.
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import cos, radians, sqrt
from pathlib import Path

import phonenumbers
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from backend.accounts.models import Organization, Role, Skill, Team, TeamMember, User
from backend.accounts.security import hash_password
from backend.customers.models import (
    Contact,
    Customer,
    CustomerKind,
    Interaction,
    InteractionKind,
    Site,
)
from backend.customers.search import search_fields
from backend.customers.services import point_wkt
from backend.documents.storage import FileStorage
from backend.notifications.models import PushDevice, PushPlatform
from backend.sales.leads import capture_lead
from backend.sales.schemas import LeadIn
from backend.seed.orgs import seed_session
from backend.seed.pipeline import seed_window_pipeline
from backend.seed.visits import seed_field_day

DEMO_PASSWORD_ENV = "FIELDCRM_DEMO_PASSWORD"  # noqa: S105 - the name of a variable
DEFAULT_DEMO_PASSWORD = "windows-demo-2026"  # noqa: S105 - the documented demo password
DEMO_ORG_NAME = "Kirill's Windows"
DEMO_ADMIN_EMAIL = "kirill@windows.example"
DEMO_TIME_ZONE = "Europe/Moscow"
DEMO_SEED = 2026
HISTORY_DAYS = 90
_FLUSH_EVERY = 40


def demo_password() -> str:
    """The password of every demo user."""
    return os.environ.get(DEMO_PASSWORD_ENV, DEFAULT_DEMO_PASSWORD)


# --- shared vocabulary: people ------------------------------------------------------------------


def _words(text_block: str) -> tuple[str, ...]:
    return tuple(text_block.split())


SURNAMES: tuple[str, ...] = _words(
    """
    Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов
    Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев
    Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв Сергеев
    Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков Сорокин
    Виноградов Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров Давыдов
    Беляев Герасимов Богданов Осипов Сидоров Матвеев Титов Марков Миронов Крылов Куликов Карпов
    Власов Мельников Денисов Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин
    Чернов Абрамов Мартынов Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов
    Родионов Коновалов Лазарев Воронин Климов Филатов Пономарёв Голубев Кудрявцев Прохоров
    Наумов Потапов Журавлёв Овчинников Трофимов Леонов Соболев Ермаков Колесников Гончаров
    Емельянов Никифоров Грачёв Котов Гришин Ефремов Архипов Громов Кириллов Малышев Панов
    Моисеев Румянцев Акимов Кондратьев Бирюков Горбунов Анисимов Ерёмин Тихомиров Галкин
    Лукьянов Михеев Скворцов Юдин Белоусов Нестеров Симонов Прокофьев Харитонов Князев Цветков
    Левин Митрофанов Воронов Аксёнов Мальцев Логинов Горшков Савин Краснов Майоров Демидов
    Елисеев Рыбаков Сафонов Плотников Хохлов Жданов Ершов Шубин Блинов Шилов Ширяев
    Вишневский Покровский Островский Ольховский Шевченко Бондаренко Коваленко Ткаченко Кравченко
    Хабибуллин Галиев Сафин Гарипов Закиров Нуриев Валиев Шарипов Мухаметзянов Зарипов Ахметов
    Хайруллин Гильмутдинов Файзуллин Габдуллин Садыков Латыпов Хасанов Гайнутдинов Сабиров
    Мингазов Фаттахов Яруллин Ганиев Камалов Исмагилов Хуснутдинов Сагдиев Гатауллин Набиуллин
    """
)
MALE_NAMES: tuple[str, ...] = _words(
    """
    Александр Алексей Андрей Антон Артём Борис Вадим Валерий Василий Виктор Владимир Владислав
    Вячеслав Геннадий Георгий Глеб Григорий Даниил Денис Дмитрий Евгений Егор Иван Игорь Илья
    Кирилл Константин Леонид Максим Михаил Никита Николай Олег Павел Пётр Роман Руслан Сергей
    Станислав Степан Тимур Фёдор Юрий Ярослав Айдар Рустам Марат Ринат Ильдар Азат Радик Рамиль
    Ильнур Булат
    """
)
FEMALE_NAMES: tuple[str, ...] = _words(
    """
    Александра Алина Алла Анастасия Анна Валентина Валерия Вера Виктория Галина Дарья Диана
    Евгения Екатерина Елена Елизавета Жанна Зоя Инна Ирина Карина Кристина Ксения Лариса Лидия
    Любовь Людмила Маргарита Марина Мария Надежда Наталья Нина Оксана Ольга Полина Светлана
    София Таисия Тамара Татьяна Юлия Яна Гульнара Лилия Альбина Гузель Эльвира Регина Алсу
    Резеда Динара
    """
)
_PATRONYMIC_STEMS: tuple[str, ...] = _words(
    """
    Александров Алексеев Андреев Анатольев Борисов Валерьев Васильев Викторов Владимиров
    Геннадьев Григорьев Дмитриев Евгеньев Иванов Игорев Константинов Михайлов Николаев Олегов
    Павлов Петров Романов Сергеев Юрьев Маратов Ринатов Рустамов Ильдаров Айдаров Рашидов
    Фаридов Равилев
    """
)
MALE_PATRONYMICS: tuple[str, ...] = tuple(s + "ич" for s in _PATRONYMIC_STEMS)
FEMALE_PATRONYMICS: tuple[str, ...] = tuple(s + "на" for s in _PATRONYMIC_STEMS)

_FEMININE_ENDINGS = (("ский", "ская"), ("цкий", "цкая"), ("ой", "ая"))


def female_surname(surname: str) -> str:
    """The feminine form of a Russian or Tatar surname (Петров → Петрова, Островский →
    Островская; Шевченко stays)."""
    for male, female in _FEMININE_ENDINGS:
        if surname.endswith(male):
            return surname[: -len(male)] + female
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    return surname


@dataclass(frozen=True, slots=True)
class Person:
    """A generated person: ``full`` is "Фамилия Имя Отчество"."""

    surname: str
    first: str
    patronymic: str

    @property
    def full(self) -> str:
        """Surname, first name and patronymic, the way Russian customer lists show people."""
        return f"{self.surname} {self.first} {self.patronymic}"

    @property
    def short(self) -> str:
        """First name and surname."""
        return f"{self.first} {self.surname}"


def random_person(rng: random.Random) -> Person:
    """A person with consistent gender across surname, first name and patronymic."""
    surname = rng.choice(SURNAMES)
    i = rng.randrange(len(_PATRONYMIC_STEMS))
    if rng.random() < 0.5:
        return Person(surname, rng.choice(MALE_NAMES), MALE_PATRONYMICS[i])
    return Person(female_surname(surname), rng.choice(FEMALE_NAMES), FEMALE_PATRONYMICS[i])


_TRANSLIT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
        "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
        "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
        "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
        "я": "ya",
    }
)  # fmt: skip
_NOT_LOCAL_PART = re.compile(r"[^a-z0-9]+")


def translit(text_ru: str) -> str:
    """A lower-case ASCII rendering of Cyrillic, fit for the local part of an email."""
    return _NOT_LOCAL_PART.sub("", text_ru.lower().translate(_TRANSLIT))


MAIL_DOMAINS: tuple[str, ...] = ("mail.example", "inbox.example", "post.example", "list.example")


def person_email(rng: random.Random, person: Person) -> str:
    """A private email address such as ``petrova.anna84@mail.example``."""
    first, surname = translit(person.first), translit(person.surname)
    local = rng.choice(
        (
            f"{surname}.{first}",
            f"{first}.{surname}",
            f"{first[0]}.{surname}",
            f"{surname}{first[0]}",
        )
    )
    if rng.random() < 0.6:
        local += str(rng.randrange(60, 100) if rng.random() < 0.5 else rng.randrange(1, 1000))
    return f"{local}@{rng.choice(MAIL_DOMAINS)}"


# Russian mobile numbers: +7 9XX XXX-XX-XX. Only codes outside 93x are used, because in
# libphonenumber's metadata every number with such a code is a valid mobile, and the common
# operator codes of Tatarstan come first (several times) so they are the most frequent.
MOBILE_CODES: tuple[int, ...] = (
    *(917, 917, 917, 927, 927, 927, 987, 987, 960, 960, 965, 965, 903, 904, 905, 906, 909),
    *range(910, 930),
    *(950, 951, 952, 953, 961, 962, 963, 964, 966, 967, 968, 969, 977, 978, 980, 981, 982),
    *(983, 984, 985, 986, 988, 989, 991, 992, 993, 994, 995, 996, 997, 999),
)


def random_mobile(rng: random.Random) -> str:
    """A Russian mobile number in E.164 (``+79171234567``)."""
    return f"+7{rng.choice(MOBILE_CODES)}{rng.randrange(10_000_000):07d}"


def is_valid_phone(e164: str) -> bool:
    """Whether libphonenumber accepts ``e164`` as a valid number."""
    return bool(phonenumbers.is_valid_number(phonenumbers.parse(e164, None)))


def national_format(e164: str) -> str:
    """How people in Russia write a mobile number: ``8 912 345-67-89``."""
    digits = e164.removeprefix("+7")
    return f"8 {digits[:3]} {digits[3:6]}-{digits[6:8]}-{digits[8:]}"


# --- shared vocabulary: Kazan -------------------------------------------------------------------

KAZAN_BOUNDS = (55.70, 55.88, 48.95, 49.30)
"""South, north, west, east: the rough bounding box of Kazan."""


@dataclass(frozen=True, slots=True)
class District:
    """A residential area of Kazan: a centre on land, a spread and some of its streets."""

    name: str
    lat: float
    lon: float
    sigma_km: float
    weight: float
    streets: tuple[str, ...]


# Centres lie on land, away from the Volga, the Kazanka and the Kaban lakes; points are drawn
# with a Gaussian spread around them and cut off at 1.8 sigma, which keeps them on land too.
KAZAN_DISTRICTS: tuple[District, ...] = (
    District(
        "Вахитовский", 55.787, 49.130, 0.9, 1.0,
        ("ул. Баумана", "ул. Пушкина", "ул. Карла Маркса", "ул. Большая Красная",
         "ул. Островского", "ул. Татарстан", "ул. Гоголя", "ул. Достоевского", "ул. Щапова",
         "ул. Толстого", "ул. Вишневского", "ул. Волкова"),
    ),
    District(
        "Приволжский", 55.752, 49.160, 1.3, 1.3,
        ("ул. Рихарда Зорге", "ул. Габишева", "ул. Закиева", "ул. Хусаина Мавлютова",
         "ул. Танковая", "ул. Отрадная", "ул. Кул Гали", "ул. Профессора Камая"),
    ),
    District(
        "Советский", 55.786, 49.205, 1.5, 1.4,
        ("Сибирский тракт", "ул. Патриса Лумумбы", "ул. Аделя Кутуя", "ул. Гвардейская",
         "ул. Даурская", "ул. Академика Сахарова", "ул. Братьев Касимовых", "ул. Ершова",
         "ул. Космонавтов"),
    ),
    District(
        "Советский (Азино)", 55.758, 49.215, 1.0, 1.0,
        ("ул. Завойского", "ул. Минская", "ул. Альберта Камалеева", "ул. Юлиуса Фучика",
         "пр. Победы"),
    ),
    District(
        "Ново-Савиновский", 55.832, 49.128, 1.0, 1.4,
        ("ул. Чистопольская", "пр. Ямашева", "ул. Фатыха Амирхана", "ул. Адоратского",
         "ул. Мусина", "ул. Бондаренко", "ул. Четаева", "ул. Абжалилова", "ул. Сибгата Хакима",
         "ул. Серова"),
    ),
    District(
        "Московский", 55.828, 49.068, 0.9, 1.0,
        ("ул. Декабристов", "ул. Восстания", "ул. Саид-Галеева", "ул. Ибрагимова",
         "ул. Короленко", "ул. Тунакова", "ул. Волгоградская", "ул. Максимова"),
    ),
    District(
        "Авиастроительный", 55.858, 49.090, 1.2, 0.9,
        ("ул. Челюскина", "ул. Копылова", "ул. Лукина", "ул. Дементьева", "ул. Ленинградская",
         "ул. Побежимова", "ул. Айдарова", "ул. Симонова"),
    ),
    District(
        "Кировский", 55.814, 49.025, 0.8, 0.6,
        ("Горьковское шоссе", "ул. Краснококшайская", "ул. Тэцевская", "ул. Ильича",
         "ул. Большая Заречная"),
    ),
)  # fmt: skip
_DISTRICT_WEIGHTS = tuple(d.weight for d in KAZAN_DISTRICTS)
_KM_PER_DEG_LAT = 111.2
_CUTOFF_SIGMAS = 1.8


def random_district(rng: random.Random) -> District:
    """A district, weighted roughly by how many people live there."""
    return rng.choices(KAZAN_DISTRICTS, weights=_DISTRICT_WEIGHTS)[0]


def kazan_point(rng: random.Random, district: District) -> tuple[float, float]:
    """``(lat, lon)`` near the district's centre, inside Kazan's bounding box."""
    south, north, west, east = KAZAN_BOUNDS
    km_per_deg_lon = _KM_PER_DEG_LAT * cos(radians(district.lat))
    while True:
        dy, dx = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        if sqrt(dx * dx + dy * dy) > _CUTOFF_SIGMAS:
            continue
        lat = district.lat + dy * district.sigma_km / _KM_PER_DEG_LAT
        lon = district.lon + dx * district.sigma_km / km_per_deg_lon
        if south <= lat <= north and west <= lon <= east:
            return round(lat, 6), round(lon, 6)


def kazan_address(rng: random.Random, district: District, *, flat: bool, office: bool) -> str:
    """A street address in Kazan: ``г. Казань, ул. Баумана, д. 12, кв. 34``."""
    house = str(rng.randrange(1, 121))
    if rng.random() < 0.12:
        house += rng.choice(("А", "Б", " к1", " к2"))
    address = f"г. Казань, {rng.choice(district.streets)}, д. {house}"
    if flat:
        address += f", кв. {rng.randrange(1, 241)}"
    elif office:
        address += f", офис {rng.randrange(1, 40)}"
    return address


_COMPANY_FORMS = ("ООО", "ООО", "ООО", "АО", "ТСЖ", "УК")
_COMPANY_ADJECTIVES = (
    "Казанский", "Волжский", "Северный", "Новый", "Татарский", "Светлый", "Уютный", "Камский",
    "Приволжский", "Городской", "Первый", "Добрый",
)  # fmt: skip
_COMPANY_NOUNS = (
    "Дом", "Двор", "Квартал", "Стройсервис", "Проект", "Ремонт", "Альянс", "Комфорт", "Мастер",
    "Партнёр", "Капитал", "Фасад",
)  # fmt: skip
COMPANY_POSITIONS = (
    "директор", "заместитель директора", "завхоз", "инженер", "менеджер по закупкам",
    "главный бухгалтер", "председатель правления",
)  # fmt: skip


def random_company(rng: random.Random, district: District) -> str:
    """A company name: ``ООО «Казанский Дом»``, ``ТСЖ «Чистопольская 61»``, ``ИП Галиев Р. М.``."""
    form = rng.choice((*_COMPANY_FORMS, "ИП"))
    if form == "ИП":
        person = random_person(rng)
        return f"ИП {person.surname} {person.first[0]}. {person.patronymic[0]}."
    if form == "ТСЖ":
        street = rng.choice(district.streets).split(" ", 1)[-1]
        return f"ТСЖ «{street} {rng.randrange(1, 121)}»"
    return f"{form} «{rng.choice(_COMPANY_ADJECTIVES)} {rng.choice(_COMPANY_NOUNS)}»"


def company_email(rng: random.Random, company: str) -> str:
    """An email at the company's own domain such as ``info@kazanskiydom.example``."""
    inner = company.split("«", 1)[-1].rstrip("»") if "«" in company else company
    domain = translit(inner) or "company"
    return f"{rng.choice(('info', 'office', 'zakaz', 'snab'))}@{domain}.example"


# --- the demo company ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoUser:
    """One demo login."""

    key: str
    full_name: str
    role: Role
    skills: tuple[Skill, ...]
    phone: str
    team: str | None = None  # the team the user is a member of
    owner_weight: int = 0  # how many customers, relatively, the user owns

    @property
    def email(self) -> str:
        """``<key>@windows.example``."""
        return f"{self.key}@windows.example"


# Where each field worker's day starts and ends (routes): measurers from home, installers from
# the warehouse on Tech Street (Tekhnicheskaya) where the windows are loaded.
WAREHOUSE = (55.7697, 49.2158)
DEMO_BASES: dict[str, tuple[float, float]] = {
    "igor": (55.8304, 49.0661),
    "marat": (55.7447, 49.1839),
}

TEAM_A = "Команда Анны"
TEAM_B = "Команда Дмитрия"
TEAM_LEADS = {TEAM_A: "anna", TEAM_B: "dmitry"}

DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("kirill", "Кирилл Соколов", Role.ADMIN, (), "+79172000101"),
    DemoUser("anna", "Анна Петрова", Role.MANAGER, (), "+79172000102", owner_weight=3),
    DemoUser("dmitry", "Дмитрий Волков", Role.MANAGER, (), "+79172000103", owner_weight=3),
    DemoUser("igor", "Игорь Смирнов", Role.FIELD, (Skill.MEASURER,), "+79172000104", TEAM_A, 2),
    DemoUser("marat", "Марат Хабибуллин", Role.FIELD, (Skill.MEASURER,), "+79172000105", TEAM_B, 2),
    DemoUser(
        "alexey", "Алексей Кузнецов", Role.FIELD, (Skill.INSTALLER,), "+79272000106", TEAM_A, 1
    ),
    DemoUser("rinat", "Ринат Галиев", Role.FIELD, (Skill.INSTALLER,), "+79272000107", TEAM_B, 1),
    DemoUser("sergey", "Сергей Морозов", Role.FIELD, (Skill.INSTALLER,), "+79272000108", TEAM_B, 1),
    DemoUser(
        "elena", "Елена Николаева", Role.FIELD, (Skill.SALESPERSON,), "+79872000109", TEAM_A, 3
    ),
)

PAYMENT_DETAILS: dict[str, str] = {
    "recipient": "ООО «Окна Кирилла»",
    "bankName": "ПАО «АК БАРС» БАНК, г. Казань",
    "accountNumber": "40702810400020012345",
    "bic": "049205805",
    "taxId": "1657123456",
}

_SOURCES = ("сайт", "сайт", "рекомендация", "Авито", "2ГИС", "звонок", "выставка", "ВКонтакте")
_CUSTOMER_NOTES = (
    "Хочет тёплое остекление балкона.",
    "Интересуется ламинацией под дуб.",
    "Нужен счёт на юрлицо.",
    "Просит скидку при заказе от пяти окон.",
    "Окна выходят на проспект: нужен шумоизоляционный стеклопакет.",
    "Пенсионер, предоставить скидку 5 %.",
    "Повторный клиент, в прошлом году меняли окна на кухне.",
    "Нужны москитные сетки на все окна.",
)
_ACCESS_NOTES = (
    "Домофон: номер квартиры и «вызов».",
    "Код подъезда 1357, лифт не работает.",
    "Парковка во дворе, въезд со стороны улицы.",
    "Во дворе собака, звонить за 15 минут до приезда.",
    "Ключи у консьержа, предупредить заранее.",
    "Звонить за час до приезда.",
    "Шлагбаум: назвать номер квартиры охране.",
    "Подъём без лифта, 5 этаж.",
    "Вход со двора, третья дверь слева.",
)
_PERSON_LABELS = ("Квартира", "Квартира", "Квартира", "Дом", "Дача")
_COMPANY_LABELS = ("Офис", "Склад", "Объект", "Подъезд 2")


@dataclass(frozen=True, slots=True)
class _Step:
    kind: InteractionKind
    outcomes: tuple[str, ...]
    bodies: tuple[str, ...]


_REFUSED = "отказ: дорого"

# The usual path of a window order; a customer's timeline is a prefix of it, plus notes.
_STEPS: tuple[_Step, ...] = (
    _Step(
        InteractionKind.CALL,
        ("заявка принята", "договорились о замере", "клиент думает"),
        ("Входящий звонок, интересуют пластиковые окна.", "Звонок с сайта, просит замер."),
    ),
    _Step(
        InteractionKind.VISIT,
        ("замер выполнен",),
        (
            "Замер трёх окон и балконного блока, дом кирпичный.",
            "Замер двух окон, откосы под замену.",
            "Замер остекления лоджии 6 м.",
            "Замер пяти окон, панельный дом, подоконники оставить.",
        ),
    ),
    _Step(
        InteractionKind.EMAIL,
        ("отправлено КП",),
        ("Отправили коммерческое предложение и эскизы.", "Отправили расчёт с вариантами."),
    ),
    _Step(
        InteractionKind.CALL,
        ("согласовали монтаж", "перезвонить позже", "не дозвонились", _REFUSED),
        ("Обсудили расчёт.", "Уточнили цвет профиля и фурнитуру."),
    ),
    _Step(
        InteractionKind.VISIT,
        ("монтаж выполнен", "монтаж выполнен", "регулировка фурнитуры"),
        ("Монтаж окон, мусор вывезли.", "Монтаж и отделка откосов.", "Регулировка створок."),
    ),
    _Step(
        InteractionKind.NOTE,
        ("",),
        ("Клиент доволен, оставил отзыв.", "Оплата получена полностью.", "Гарантия 5 лет."),
    ),
)
_EXTRA_NOTES = (
    "Предоплата 30 % получена.",
    "Клиент просит перенести визит на выходные.",
    "Нужен подъём стеклопакетов на 9 этаж.",
    "Согласовать с управляющей компанией вынос мусора.",
)


DEMO_FORM_KEY = "demo-window-request"
_LEAD_MESSAGES = (
    "Нужно поменять три окна в квартире",
    "Остекление балкона, 6 метров",
    "Окна в частный дом, 8 штук",
    "Замена стеклопакета на кухне",
)


async def _demo_leads(
    session: AsyncSession, rng: random.Random, phones: _UniquePhones, today: datetime
) -> int:
    """Website requests through the real intake (deal + call-back task for the manager)."""
    with tempfile.TemporaryDirectory() as files:
        storage = FileStorage(Path(files))
        count = 6
        for n in range(count):
            person = random_person(rng)
            district = random_district(rng)
            lat, lon = kazan_point(rng, district)
            await capture_lead(
                session,
                DEMO_FORM_KEY,
                LeadIn(
                    name=person.full,
                    phone=phones.next(),
                    address=kazan_address(rng, district, flat=True, office=False),
                    lat=lat,
                    lon=lon,
                    message=_LEAD_MESSAGES[n % len(_LEAD_MESSAGES)],
                    utm_source=("yandex", "google", "vk")[n % 3],
                ),
                client_ip=f"demo-{n}",
                referrer="https://okna-kirilla.example/",
                now=datetime.now(UTC) - timedelta(minutes=7 * (count - n)),
                storage=storage,
                geocoder=None,
                rate_per_minute=1000,
            )
    return count


def demo_logins_text() -> str:
    """A readable block of the demo logins (email, role, skills, team) and their password."""
    lines = [
        f"  Website request form: /f/{DEMO_FORM_KEY}",
        f"  Demo logins ({DEMO_ORG_NAME}); password for all: {demo_password()}",
    ]
    width = max(len(u.email) for u in DEMO_USERS)
    for user in DEMO_USERS:
        what = user.role.value
        if user.skills:
            what += " (" + ", ".join(s.value for s in user.skills) + ")"
        led = [team for team, lead in TEAM_LEADS.items() if lead == user.key]
        if led:
            what += f", leads {led[0]}"
        elif user.team:
            what += f", in {user.team}"
        lines.append(f"    {user.email:<{width}}  {what}")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class _Counts:
    customers: int = 0
    companies: int = 0
    contacts: int = 0
    sites: int = 0
    interactions: int = 0
    leads: int = 0


class _UniquePhones:
    """Valid, never repeated Russian mobile numbers."""

    def __init__(self, rng: random.Random, taken: Sequence[str] = ()) -> None:
        self._rng = rng
        self._seen = set(taken)

    def next(self) -> str:
        while True:
            phone = random_mobile(self._rng)
            if phone not in self._seen and is_valid_phone(phone):
                self._seen.add(phone)
                return phone


def _moment(rng: random.Random, today: datetime, days_ago: float) -> datetime:
    """A moment during Moscow working hours (09:00-19:00, UTC+3) ``days_ago`` days before
    yesterday (so never in the future)."""
    day = today - timedelta(days=1 + int(days_ago))
    return day + timedelta(hours=6, seconds=rng.randrange(0, 10 * 3600))


def _timeline(
    rng: random.Random,
    org_id: uuid.UUID,
    customer_id: uuid.UUID,
    author_id: uuid.UUID,
    today: datetime,
    has_email: bool,
) -> list[Interaction]:
    length = rng.choices(range(7), weights=(1, 3, 3, 2, 2, 1, 1))[0]
    steps = [s for s in _STEPS if has_email or s.kind is not InteractionKind.EMAIL][:length]
    if length and rng.random() < 0.3:
        steps.append(_Step(InteractionKind.NOTE, ("",), _EXTRA_NOTES))
    days = sorted((rng.uniform(0, HISTORY_DAYS) for _ in steps), reverse=True)
    events: list[Interaction] = []
    for step, days_ago in zip(steps, days, strict=True):
        outcome = rng.choice(step.outcomes) or None
        if events and events[-1].outcome == _REFUSED:
            break  # nothing happens after the customer said no
        duration: int | None = None
        if step.kind is InteractionKind.CALL:
            duration = 0 if outcome == "не дозвонились" else rng.randrange(40, 600)
        elif step.kind is InteractionKind.VISIT:
            duration = rng.randrange(20, 180) * 60
        events.append(
            Interaction(
                id=uuid.uuid4(),
                organization_id=org_id,
                customer_id=customer_id,
                kind=step.kind,
                author_id=author_id,
                occurred_at=_moment(rng, today, days_ago),
                outcome=outcome,
                body=rng.choice(step.bodies),
                duration_s=duration,
            )
        )
    return events


def _customer_rows(
    rng: random.Random,
    org_id: uuid.UUID,
    owner_id: uuid.UUID,
    phones: _UniquePhones,
    today: datetime,
) -> tuple[Customer, Contact, Site, list[Interaction]]:
    district = random_district(rng)
    customer_id = uuid.uuid4()
    company = rng.random() < 0.15
    if company:
        name = random_company(rng, district)
        person = random_person(rng)
        contact_name, position = person.short, rng.choice(COMPANY_POSITIONS)
        email = company_email(rng, name) if rng.random() < 0.85 else None
        label = rng.choice(_COMPANY_LABELS)
        address = kazan_address(rng, district, flat=False, office=label == "Офис")
    else:
        person = random_person(rng)
        name = contact_name = person.full
        position = None
        email = person_email(rng, person) if rng.random() < 0.45 else None
        label = rng.choice(_PERSON_LABELS)
        address = kazan_address(rng, district, flat=label == "Квартира", office=False)
    phone = phones.next()
    lat, lon = kazan_point(rng, district)
    events = _timeline(rng, org_id, customer_id, owner_id, today, email is not None)
    first = min((e.occurred_at for e in events), default=None)
    if first is None:
        created = _moment(rng, today, rng.uniform(0, HISTORY_DAYS + 30))
    else:
        created = first - timedelta(minutes=rng.randrange(5, 3 * 24 * 60))
    updated = max((e.occurred_at for e in events), default=created)
    search_phones, search_emails = search_fields([phone], [email])
    customer = Customer(
        id=customer_id,
        organization_id=org_id,
        kind=CustomerKind.COMPANY if company else CustomerKind.PERSON,
        name=name,
        owner_id=owner_id,
        source=rng.choice(_SOURCES),
        notes=rng.choice(_CUSTOMER_NOTES) if rng.random() < 0.25 else None,
        search_phones=search_phones,
        search_emails=search_emails,
        created_at=created,
        updated_at=updated,
    )
    contact = Contact(
        id=uuid.uuid4(),
        organization_id=org_id,
        customer_id=customer_id,
        name=contact_name,
        position=position,
        phone=phone,
        email=email,
        created_at=created,
        updated_at=created,
    )
    site = Site(
        id=uuid.uuid4(),
        organization_id=org_id,
        customer_id=customer_id,
        label=label,
        address=address,
        location=point_wkt(lat, lon),
        access_notes=rng.choice(_ACCESS_NOTES) if rng.random() < 0.4 else None,
        created_at=created,
        updated_at=created,
    )
    return customer, contact, site, events


async def _remove_previous(session: AsyncSession) -> bool:
    """Delete the demo organisation if it exists; refuse when a demo email is used elsewhere."""
    # Two seeds at once would race on the unique emails: take turns.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fieldcrm-seed-demo'))"))
    org_id = await session.scalar(
        select(User.organization_id).where(func.lower(User.email) == DEMO_ADMIN_EMAIL)
    )
    if org_id is not None:
        # pings (partitioned) has no foreign keys: everything else goes by ON DELETE CASCADE.
        await session.execute(
            text(
                "DELETE FROM pings WHERE user_id IN"
                " (SELECT id FROM users WHERE organization_id = :org)"
            ),
            {"org": org_id},
        )
        await session.execute(delete(Organization).where(Organization.id == org_id))
    clashes = (
        await session.scalars(
            select(User.email).where(func.lower(User.email).in_([u.email for u in DEMO_USERS]))
        )
    ).all()
    if clashes:
        raise SystemExit(
            "seed-demo: these demo emails belong to users of another organisation: "
            + ", ".join(sorted(clashes))
            + "; remove those users first"
        )
    return org_id is not None


async def _create_people(
    session: AsyncSession, org_id: uuid.UUID, password_hash: str
) -> dict[str, uuid.UUID]:
    ids: dict[str, uuid.UUID] = {}
    for demo_user in DEMO_USERS:
        if not is_valid_phone(demo_user.phone):
            raise AssertionError(f"demo phone {demo_user.phone} is not valid")
        ids[demo_user.key] = uuid.uuid4()
        base = DEMO_BASES.get(demo_user.key)
        if base is None and Skill.INSTALLER in demo_user.skills:
            base = WAREHOUSE
        session.add(
            User(
                id=ids[demo_user.key],
                organization_id=org_id,
                email=demo_user.email,
                password_hash=password_hash,
                full_name=demo_user.full_name,
                role=demo_user.role,
                skills=sorted(s.value for s in demo_user.skills),
                phone=demo_user.phone,
                time_zone=DEMO_TIME_ZONE,
                base_lat=base[0] if base else None,
                base_lon=base[1] if base else None,
                is_active=True,
                token_version=1,
            )
        )
    await session.flush()
    for team_name, lead in TEAM_LEADS.items():
        team_id = uuid.uuid4()
        session.add(Team(id=team_id, organization_id=org_id, name=team_name, lead_id=ids[lead]))
        await session.flush()
        for demo_user in DEMO_USERS:
            if demo_user.team == team_name:
                session.add(
                    TeamMember(team_id=team_id, user_id=ids[demo_user.key], organization_id=org_id)
                )
    await session.flush()
    return ids


async def _roll_up(session: AsyncSession, organization_id: uuid.UUID, now: datetime) -> None:
    """Build the organisation's report and field roll-ups and customer segments."""
    from backend.appraisal import field_rollups, rfm, sales_rollups

    await sales_rollups.rebuild(session, organization_id, now)
    await field_rollups.rebuild(
        session, organization_id, now.date() - timedelta(days=200), now.date(), now
    )
    await rfm.recompute(session, organization_id, now)


async def seed_demo(database_url: str, customers: int = 320) -> str:
    """Create (or re-create) the demo organisation; return a short summary."""
    if customers < 0:
        raise SystemExit("seed-demo: --customers must not be negative")
    started = time.perf_counter()
    rng = random.Random(DEMO_SEED)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    password_hash = hash_password(demo_password())  # once: argon2 is slow on purpose
    counts = _Counts()
    async with seed_session(database_url) as session:
        replaced = await _remove_previous(session)
        org = Organization(
            id=uuid.uuid4(),
            name=DEMO_ORG_NAME,
            time_zone=DEMO_TIME_ZONE,
            currency="RUB",
            locale="ru-RU",
            payment_details=dict(PAYMENT_DETAILS),
        )
        session.add(org)
        await session.flush()
        user_ids = await _create_people(session, org.id, password_hash)
        # Everyone has the app on a phone, so the demo's pushes reach the local fake FCM.
        now = datetime.now(UTC)
        session.add_all(
            PushDevice(
                organization_id=org.id,
                user_id=user_id,
                token=f"demo-phone-{user_id}",
                platform=PushPlatform.ANDROID,
                app_version="demo",
                last_seen_at=now,
                created_at=now,
                updated_at=now,
            )
            for user_id in user_ids.values()
        )
        owners = [user_ids[u.key] for u in DEMO_USERS if u.owner_weight]
        weights = [u.owner_weight for u in DEMO_USERS if u.owner_weight]
        phones = _UniquePhones(rng, taken=[u.phone for u in DEMO_USERS])
        with tqdm(total=customers, desc="demo customers", unit="customer", file=sys.stderr) as bar:
            dependents: list[Contact | Site | Interaction] = []
            for i in range(customers):
                # Round-robin first, so every owner has customers even in a tiny demo.
                owner = owners[i] if i < len(owners) else rng.choices(owners, weights)[0]
                customer, contact, site, events = _customer_rows(rng, org.id, owner, phones, today)
                session.add(customer)
                dependents += [contact, site, *events]
                counts.customers += 1
                counts.companies += customer.kind is CustomerKind.COMPANY
                counts.contacts += 1
                counts.sites += 1
                counts.interactions += len(events)
                if (i + 1) % _FLUSH_EVERY == 0 or i + 1 == customers:
                    # Customers first: without relationships the ORM does not order the
                    # INSERTs of different tables by their foreign keys.
                    await session.flush()
                    session.add_all(dependents)
                    await session.flush()
                    dependents = []
                    bar.update((i + 1) - bar.n)
        await seed_window_pipeline(session, org, form_key=DEMO_FORM_KEY)
        field_day = await seed_field_day(session, org, now=datetime.now(UTC), seed=DEMO_SEED)
        # The company's past for reports and scorecards (history uses this module's vocabulary).
        from backend.seed.history import seed_history

        history = await seed_history(session, org, datetime.now(UTC), DEMO_SEED)
    # After the organisation is committed: intake takes round-robin positions in transactions
    # of their own, as it does on a live server.
    async with seed_session(database_url) as session:
        counts.leads = await _demo_leads(session, rng, phones, today)
    # Reports, scorecards and RFM segments show the history at once (the worker's jobs keep
    # them current from here on).
    async with seed_session(database_url) as session:
        await _roll_up(session, org.id, datetime.now(UTC))
    seconds = time.perf_counter() - started
    return (
        f"{'re-created' if replaced else 'created'} the demo organisation {DEMO_ORG_NAME!r}"
        f" (id {org.id}): {len(DEMO_USERS)} users in {len(TEAM_LEADS)} teams,"
        f" {counts.customers} customers ({counts.companies} companies), {counts.sites} sites,"
        f" {counts.interactions} interactions, {counts.leads} website requests;"
        f" today: {field_day.summary()}; history: {history.summary()}; in {seconds:.1f} s.\n"
        f"Log in as {DEMO_ADMIN_EMAIL} (admin) with the password {demo_password()!r};"
        " `fieldcrm serve --show-demo-logins` lists every demo login."
    )
