"""Chat-traffic PII training data: personal details inside everyday requests, and look-alikes that are not PII.

presidio-evaluator's templates are sentences about a person ("My SSN is 394-57-0728"); a router sees requests that
happen to carry details ("can you fix the tone of this e-mail? ... Thanks, Priya, +44 20 7946 0958") and technical
prompts full of numbers that are not personal at all (order numbers, ports, versions). This module makes both:

* :func:`chat_pii_records`: an everyday request (the intent router's request templates and the jailbreak data's
  everyday requests) with one to three *carriers* of fake personal data (a clause with its cue word, a pasted form,
  a signature block), and often a look-alike too.
* :func:`lookalike_records`: the same requests with only look-alikes: tracking, serial, SKU, invoice and ticket
  numbers, versions, ports, error codes, line numbers, prices, measurements, public dates, code and config, public
  figures and companies. Every token is ``O``.

Values come from Faker (seeded, several locales) and follow the annotation conventions of
``eval_sets/README.md``: an address is street / GPE / ZIP_CODE parts, a title is its own span, cue words stay
outside spans. Records carry ``template_id = "chat:<carrier>"`` or ``"lookalike:<kind>"``; they go to training
and validation only, so the template-disjoint test split stays the generator's.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from loraroute.data.pii import Record, validate_record

MAX_REQUEST_CHARS = 160

# Faker locales for names, streets and cities: the traffic a router sees is not only American.
_LOCALES = (
    "en_US",
    "en_US",
    "en_US",
    "en_GB",
    "es_ES",
    "de_DE",
    "fr_FR",
    "it_IT",
    "pt_BR",
    "nl_NL",
    "pl_PL",
    "en_IN",
    "tr_TR",
)

# Faker locales whose city() draws real places (de_DE's Greiz, en_IN's Rohtak, zu_ZA's Sasolburg); en_US and en_GB
# make up names ("East Douglasmouth"), so alone they taught the model that only invented towns locate a person.
_CITY_LOCALES = (
    "en_US",
    "en_GB",
    "de_DE",
    "es_ES",
    "pl_PL",
    "en_IN",
    "sv_SE",
    "da_DK",
    "fi_FI",
    "zu_ZA",
    "id_ID",
    "cs_CZ",
    "es_CO",
    "es_AR",
    "nl_BE",
    "hu_HU",
)

# People, their relatives and their roles, without a name: never an entity ("my landlord", "ask your
# pediatrician"); a title is annotated only next to a private person's name.
_ROLES = (
    "landlord",
    "therapist",
    "cardiologist",
    "coworker",
    "office manager",
    "pediatrician",
    "accountant",
    "roommate",
    "mom",
    "dad",
    "doc",
    "nurse",
    "freelancer",
    "contractor",
    "software engineer",
    "teacher",
    "manager",
    "boss",
    "plumber",
    "dentist",
    "lawyer",
    "recruiter",
    "tutor",
    "physio",
    "neighbour",
    "case worker",
    "GP",
    "midwife",
    "pharmacist",
    "team lead",
    "intern",
    "HR rep",
)

# Everyday phrases in other languages, with nothing personal in them: people mix languages in chat, and a word
# the model has never seen is not a name or a place.
_FOREIGN = (
    "buenos días, tengo una pregunta",
    "¿me ayudas con esto?",
    "gracias de antemano",
    "no sé qué hacer",
    "muito obrigado",
    "tudo bem?",
    "alguém pode ajudar?",
    "vielen Dank im Voraus",
    "kurze Frage",
    "das funktioniert nicht",
    "liebe Grüße",
    "merci beaucoup",
    "c'est urgent svp",
    "je ne comprends pas",
    "bonne journée",
    "grazie mille",
    "per favore",
    "non funziona",
    "alvast bedankt",
    "hoi allemaal",
    "met vriendelijke groet",
    "teşekkürler",
    "kolay gelsin",
    "dziękuję bardzo",
    "dzień dobry",
    "asante sana",
    "salamat po",
    "tack så mycket",
    "hej hej",
    "kiitos paljon",
    "mange tak",
    "inshallah",
    "yalla",
    "namaste ji",
    "arigatou",
    "xièxie",
)
_NRP = (
    "Catholic",
    "Muslim",
    "Jewish",
    "Hindu",
    "Sikh",
    "Buddhist",
    "Mormon",
    "Orthodox Christian",
    "Baptist",
    "Brazilian",
    "Nigerian",
    "Polish",
    "Mexican",
    "Indian",
    "Filipino",
    "Vietnamese",
    "Canadian",
    "Irish",
    "Korean",
    "Ukrainian",
    "Republican",
    "Democrat",
    "Green Party member",
    "Kenyan",
    "Egyptian",
)
_HONORIFICS = ("Dr.", "Mr.", "Ms.", "Mrs.", "Prof.", "Dr", "Mx.")
_NATURE = (
    "Cedar",
    "Pinewood",
    "Maple",
    "Willow",
    "Harbor",
    "Sunrise",
    "Oak",
    "Blue Heron",
    "Silver",
    "Granite",
    "Meadow",
    "Riverbend",
    "Tamarind",
    "Juniper",
    "Northgate",
    "Lakeside",
    "Greenhollow",
    "Little Oaks",
)
_PLACE_NOUNS = ("Ridge", "Valley", "Park", "Lane", "Hill", "Creek", "Point", "Grove")
_BUSINESSES = (
    "Medical Lab",
    "Credit Union",
    "Diagnostics",
    "Pediatrics",
    "Dental",
    "Community Hospital",
    "Landscaping",
    "Imports",
    "Accounting",
    "Law Group",
    "Realty",
    "Logistics",
    "Veterinary Clinic",
    "Elementary School",
    "Bakery",
    "Plumbing",
    "Insurance",
    "Property Management",
    "Physiotherapy",
)
_PLACES = (
    "Norway",
    "Porto",
    "Seville",
    "Kyoto",
    "Patagonia",
    "the Amalfi Coast",
    "Marrakech",
    "Vancouver",
    "Reykjavik",
    "Prague",
    "the Scottish Highlands",
    "Bali",
    "Zurich Hauptbahnhof",
    "Central Park",
    "the Louvre",
    "Yosemite",
    "Cape Town",
    "Peru",
    "New Zealand",
    "Barcelona",
    "Hanoi",
    "Tuscany",
)
_PUBLIC_FIGURES = (
    "Albert Einstein",
    "Marie Curie",
    "Abraham Lincoln",
    "Taylor Swift",
    "Barack Obama",
    "Serena Williams",
    "Isaac Newton",
    "Frida Kahlo",
    "Nelson Mandela",
    "Ada Lovelace",
    "Charles Darwin",
    "Elon Musk",
    "Jane Austen",
    "Martin Luther King Jr.",
    "Cleopatra",
    "Leonardo da Vinci",
    "Napoleon",
    "Greta Thunberg",
    "Alan Turing",
    "Beyonce",
    "Lionel Messi",
    "Winston Churchill",
    "Mahatma Gandhi",
    "Shakespeare",
    "Oprah Winfrey",
    "Steve Jobs",
    "Franklin D. Roosevelt",
    "Richard Nixon",
    "Catherine the Great",
    "Queen Victoria",
    "George Washington",
    "Simone de Beauvoir",
    "Roe v. Wade",
    "Brown v. Board",
    "Julius Caesar",
    "Nikola Tesla",
    "Rosa Parks",
    "Galileo Galilei",
    "Sigmund Freud",
    "Karl Marx",
    "Adam Smith",
    "John Maynard Keynes",
    "Ludwig van Beethoven",
    "Pablo Picasso",
    "Vincent van Gogh",
    "Mozart",
    "Michael Jordan",
    "Angela Merkel",
    "Emmanuel Macron",
    "Margaret Thatcher",
    "Ronald Reagan",
    "Thomas Edison",
    "Stephen Hawking",
    "Rihanna",
    "Ed Sheeran",
    "Jeff Bezos",
    "Bill Gates",
    "Joan of Arc",
    "Genghis Khan",
    "Confucius",
    "Plato",
    "Aristotle",
    "Immanuel Kant",
)
_DRUGS = (
    "metoprolol",
    "lisinopril",
    "atorvastatin",
    "ibuprofen",
    "amoxicillin",
    "sertraline",
    "levothyroxine",
    "omeprazole",
    "warfarin",
    "insulin glargine",
    "paracetamol",
    "prednisone",
)
_COMPANIES = (
    "Microsoft",
    "Apple",
    "Nvidia",
    "Toyota",
    "Amazon",
    "Google",
    "Netflix",
    "Tesla",
    "IKEA",
    "Samsung",
    "Spotify",
    "Airbnb",
    "Boeing",
    "Pfizer",
    "Walmart",
    "Shell",
    "Siemens",
    "Nestle",
    "Uber",
    "Intel",
)
_PUBLIC_SITES = (
    "github.com",
    "stackoverflow.com",
    "pypi.org",
    "docs.python.org",
    "wikipedia.org",
    "youtube.com",
    "npmjs.com",
    "developer.mozilla.org",
    "arxiv.org",
    "kaggle.com",
)
_EVENTS = (
    "the moon landing in July 1969",
    "the fall of the Berlin Wall on 9 November 1989",
    "the 2008 financial crisis",
    "D-Day, 6 June 1944",
    "the 1906 San Francisco earthquake",
    "the signing of the Magna Carta in 1215",
    "the launch of the first iPhone in 2007",
    "the 2012 London Olympics",
    "the Chernobyl accident of April 1986",
    "Y2K on 1 January 2000",
)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


class _Values:
    """Seeded fake values, one method per type; each returns the text of one entity."""

    def __init__(self, seed: int):
        from faker import Faker

        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in sorted(set(_LOCALES) | set(_CITY_LOCALES))}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed * 100 + i)
        self.us = self.fakers["en_US"]

    def faker(self):
        return self.fakers[self.rng.choice(_LOCALES)]

    def person(self) -> str:
        f = self.faker()
        return self.rng.choice(
            [f"{f.first_name()} {f.last_name()}", f.first_name(), f"{f.first_name()} {f.last_name()}"]
        )

    def full_name(self) -> str:
        f = self.faker()
        return f"{f.first_name()} {f.last_name()}"

    def email(self) -> str:
        f = self.faker()
        user = self.rng.choice(
            [
                f.user_name(),
                f"{f.first_name()}.{f.last_name()}".lower(),
                f"{f.first_name()[0]}{f.last_name()}{self.rng.randrange(100)}".lower(),
            ]
        )
        user = "".join(c for c in user if c.isascii() and (c.isalnum() or c in "._-")) or "user"
        return f"{user}@{self.rng.choice([self.us.free_email_domain(), self.domain()])}"

    def phone(self) -> str:
        r, d = self.rng, lambda n: _digits(self.rng, n)
        area = f"{r.randrange(201, 990)}"
        return r.choice(
            [
                f"({area}) {d(3)}-{d(4)}",
                f"{area}-{d(3)}-{d(4)}",
                f"{area}.{d(3)}.{d(4)}",
                f"+1 {area} {d(3)} {d(4)}",
                f"+1-{area}-{d(3)}-{d(4)}",
                f"{area}{d(7)}",
                f"+44 20 {d(4)} {d(4)}",
                f"07{d(3)} {d(6)}",
                f"+44 7{d(3)} {d(6)}",
                f"+49 30 {d(6)}",
                f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
                f"+91 9{d(4)} {d(5)}",
                f"+61 4{d(2)} {d(3)} {d(3)}",
                f"+34 6{d(2)} {d(3)} {d(3)}",
            ]
        )

    def ssn(self) -> str:
        r = self.rng
        area = f"{r.randrange(900, 1000)}" if r.random() < 0.2 else f"{r.randrange(1, 900):03d}"
        group, serial = f"{r.randrange(1, 100):02d}", f"{r.randrange(1, 10000):04d}"
        sep = r.choice(["-", "-", "-", "", " "])
        return f"{area}{sep}{group}{sep}{serial}"

    def license(self) -> str:
        r, d = self.rng, lambda n: _digits(self.rng, n)
        letter = r.choice(string.ascii_uppercase)
        return r.choice(
            [
                f"{letter}{d(3)}-{d(4)}-{d(4)}",
                f"{letter}{d(7)}",
                f"{letter}{d(12)}",
                f"{letter}{d(3)}-{d(3)}-{d(2)}-{d(3)}-{d(1)}",
                f"{letter}{d(8)}",
                f"{d(9)}",
                f"{letter}{d(3)} {d(4)} {d(4)}",
                f"{letter}{d(4)}-{d(5)}-{d(5)}",
            ]
        )

    def card(self) -> str:
        number = self.us.credit_card_number()
        if len(number) == 16 and self.rng.random() < 0.6:
            sep = self.rng.choice([" ", "-"])
            number = sep.join(number[i : i + 4] for i in range(0, 16, 4))
        return number

    def iban(self) -> str:
        iban = self.fakers[self.rng.choice(["en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL", "it_IT"])].iban()
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if self.rng.random() < 0.5 else iban

    def ip(self) -> str:
        return self.rng.choice([self.us.ipv4_private(), self.us.ipv4_public(), self.us.ipv4_private(), self.us.ipv6()])

    def domain(self) -> str:
        f = self.faker()
        word = "".join(c for c in f.last_name().lower() if c.isascii() and c.isalpha()) or "acme"
        kind = self.rng.choice(["", "-dental", "-law", "bakery", "-labs", "-clinic", "-consulting", "-studio"])
        return f"{word}{kind}.{self.rng.choice(['com', 'net', 'co.uk', 'io', 'org', 'de', 'com.au'])}"

    def host(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"{r.choice(['db', 'app', 'web', 'mail', 'vpn', 'git', 'ci'])}{r.randrange(1, 30):02d}."
                f"{r.choice(['prod', 'ops', 'internal', 'corp', 'eu-west'])}.{self.domain()}",
                f"www.{self.domain()}",
                self.domain(),
                f"https://{self.domain()}/{r.choice(['booking', 'about', 'invoice/2291', 'login'])}",
            ]
        )

    def street(self) -> str:
        r, f = self.rng, self.fakers[self.rng.choice(["en_US", "en_US", "en_GB", "en_US"])]
        line = f"{f.building_number()} {f.street_name()}"
        unit = r.randrange(1, 999)
        # The unit belongs to the street line, written as people write it (the conventions keep it in the span).
        return r.choice(
            [
                line,
                line,
                f"{line}, Apt {unit}",
                f"{line} Apt. {unit}",
                f"{line} #{unit}",
                f"{line}, Suite {unit}",
                f"Unit {unit}, {line}",
                f"Flat {unit % 40 + 1}, {line}",
                f.street_address().replace("\n", ", "),
            ]
        )

    def city(self) -> str:
        return self.fakers[self.rng.choice(_CITY_LOCALES)].city()

    def first_name(self) -> str:
        return self.faker().first_name()

    def last_name(self) -> str:
        return self.faker().last_name()

    def state(self) -> str:
        return self.rng.choice([self.us.state_abbr(), self.us.state()])

    def country(self) -> str:
        return self.rng.choice(
            [
                "USA",
                "United States",
                "UK",
                "Canada",
                "Germany",
                "Spain",
                "India",
                "Brazil",
                "Ireland",
                "Australia",
                "Mexico",
                "France",
            ]
        )

    def zip(self) -> str:
        return self.rng.choice(
            [self.us.zipcode(), self.us.zipcode(), self.fakers["en_GB"].postcode(), self.us.zipcode_plus4()]
        )

    def date(self) -> str:
        d = self.us.date_of_birth(minimum_age=1, maximum_age=90)
        return self.rng.choice(
            [
                d.strftime("%m/%d/%Y"),
                d.strftime("%d/%m/%Y"),
                d.strftime("%B %d, %Y"),
                d.strftime("%Y-%m-%d"),
                d.strftime("%d %b %Y"),
                d.strftime("%-d %B %Y"),
                d.strftime("%b %-d %Y"),
                d.strftime("%m-%d-%y"),
            ]
        )

    def appointment(self) -> str:
        d = self.us.date_between(start_date="-30d", end_date="+120d")
        t = f"{self.rng.randrange(7, 19)}:{self.rng.choice(['00', '15', '30', '45'])}"
        minutes = self.rng.choice(["00", "15", "30", "45"])
        pm = f"{self.rng.randrange(1, 12)}:{minutes}{self.rng.choice(['pm', 'am', ' PM'])}"
        return self.rng.choice(
            [
                d.strftime("%B %-d") + f" at {t}",
                d.strftime("%A %-d %B"),
                d.strftime("%m/%d/%Y"),
                d.strftime("%a %b %-d") + f", {t}",
                d.strftime("%-d.%m.%Y"),
                d.strftime("%A %-d %B") + f" at {pm}",
                d.strftime("%a %-m/%-d") + f" at {pm}",
                d.strftime("%Y-%m-%d") + f" {t}",
                d.strftime("%A, %B %-d"),
                d.strftime("%a ").lower() + f"{self.rng.randrange(1, 12)}{self.rng.choice(['pm', 'am'])}",
                d.strftime("%A ").lower() + f"{self.rng.randrange(1, 12)}{self.rng.choice(['pm', 'am'])}",
                d.strftime("%B %-d"),
                d.strftime("%-d %B"),
                d.strftime("%-d %b %Y"),
                f"{_ordinal(d.day)} of {d.strftime('%B')}",
                d.strftime("%-m/%-d") + f" at {pm}",
                d.strftime("%A ") + f"{_ordinal(d.day)} {d.strftime('%B')}, {pm}",
            ]
        )

    def age(self) -> str:
        return str(self.rng.randrange(2, 95))

    def org(self) -> str:
        r = self.rng
        place = r.choice([self.us.last_name(), r.choice(_NATURE), f"{r.choice(_NATURE)} {r.choice(_PLACE_NOUNS)}"])
        return r.choice(
            [
                self.faker().company(),
                f"{place} {r.choice(_BUSINESSES)}",
                f"{place} {r.choice(_BUSINESSES)} {r.choice(['LLC', 'Inc.', 'Ltd', 'GmbH', 'AS', 'S.L.'])}",
            ]
        )

    def job(self) -> str:
        return self.us.job().split(",")[0]


# Carriers: (name, template). Slots are {TYPE} or {TYPE:kind} for a value of that type drawn by kind (kind defaults
# to the type). Cue words stand next to each value, as people write them.
_KIND: dict[str, Callable[[_Values], str]] = {
    "PERSON": _Values.person,
    "full": _Values.full_name,
    "first": _Values.first_name,
    "last": _Values.last_name,
    "EMAIL_ADDRESS": _Values.email,
    "PHONE_NUMBER": _Values.phone,
    "US_SSN": _Values.ssn,
    "US_DRIVER_LICENSE": _Values.license,
    "CREDIT_CARD": _Values.card,
    "IBAN_CODE": _Values.iban,
    "IP_ADDRESS": _Values.ip,
    "DOMAIN_NAME": _Values.host,
    "STREET_ADDRESS": _Values.street,
    "GPE": _Values.city,
    "state": _Values.state,
    "country": _Values.country,
    "ZIP_CODE": _Values.zip,
    "DATE_TIME": _Values.date,
    "appointment": _Values.appointment,
    "AGE": _Values.age,
    "ORGANIZATION": _Values.org,
    "TITLE": lambda v: v.rng.choice(_HONORIFICS),
    "job": _Values.job,
    "NRP": lambda v: v.rng.choice(_NRP),
}
# Slots filled with words that are never entities (a role without a name, a MAC address beside an IP).
_PLAIN: dict[str, Callable[[_Values], str]] = {
    "role": lambda v: v.rng.choice(_ROLES),
    "mac": lambda v: ":".join(f"{v.rng.randrange(256):02x}" for _ in range(6)),
    "foreign": lambda v: v.rng.choice(_FOREIGN),
}
_SLOT_TYPE = {
    **dict.fromkeys(("first", "last", "full"), "PERSON"),
    **dict.fromkeys(("state", "country"), "GPE"),
    "appointment": "DATE_TIME",
    "job": "TITLE",
}

CARRIERS: dict[str, list[str]] = {
    "name": [
        "My name is {PERSON:full}.",
        "I'm {PERSON}",
        "this is {PERSON:full} from {ORGANIZATION}",
        "Hi, {PERSON} here.",
        "my son {PERSON} is {AGE}",
        "I'm writing on behalf of {PERSON:full}",
        "ask {PERSON:first} about it",
        "tell {PERSON:first} I'll be late",
        "Hi {PERSON:first},",
        "thanks {PERSON:first}!",
        "my colleague {PERSON:first} said so",
        "@{PERSON:first} can you check",
        "{PERSON:first} from accounting asked me",
        "my sister {PERSON:first} is visiting",
        "my husband {PERSON:first} and I",
        "for my friend {PERSON:first}",
        "hey {PERSON:first}",
        "Dear {TITLE} {PERSON:last},",
        "{PERSON:first} and {PERSON:first} are coming too",
        "my boss {PERSON:full} wants it",
        "my {role} {PERSON:first} recommended it",
    ],
    "email": [
        "my email is {EMAIL_ADDRESS}",
        "email me at {EMAIL_ADDRESS}",
        "reply to {EMAIL_ADDRESS} please",
        "(my address is {EMAIL_ADDRESS})",
        "cc {EMAIL_ADDRESS} on it",
    ],
    "phone": [
        "you can reach me at {PHONE_NUMBER}",
        "my cell is {PHONE_NUMBER}",
        "phone: {PHONE_NUMBER}",
        "call me on {PHONE_NUMBER} after 5",
        "mobile {PHONE_NUMBER}",
        "text {PHONE_NUMBER} if easier",
        "tel. {PHONE_NUMBER}",
    ],
    "ssn": [
        "my SSN is {US_SSN}",
        "SSN: {US_SSN}",
        "social security number {US_SSN}",
        "my social is {US_SSN}",
        "ITIN {US_SSN}",
        "ssn {US_SSN} if you need it",
        "tax id (SSN) {US_SSN}",
    ],
    "license": [
        "my driver's license is {US_DRIVER_LICENSE}",
        "DL# {US_DRIVER_LICENSE}",
        "licence no. {US_DRIVER_LICENSE}",
        "driving licence number {US_DRIVER_LICENSE}",
        "DL {US_DRIVER_LICENSE}, expires 2029",
    ],
    "card": [
        "my card is {CREDIT_CARD}",
        "card number {CREDIT_CARD}",
        "charge it to {CREDIT_CARD}",
        "visa {CREDIT_CARD} exp 09/27",
    ],
    "iban": ["IBAN {IBAN_CODE}", "please wire it to {IBAN_CODE}", "my IBAN is {IBAN_CODE}"],
    "city": [
        "I live in {GPE}",
        "based in {GPE}, {GPE:state}",
        "we just moved to {GPE}",
        "I'm from {GPE}",
        "my home town is {GPE}, {GPE:country}",
        "{PERSON:first} lives in {GPE}",
        "my flat in {GPE}",
        "I'm a student in {GPE}",
        "moving from {GPE} to {GPE} next month",
        "my parents back in {GPE}",
        "I work in {GPE}",
        "we're in {GPE} now",
    ],
    "address": [
        "I live at {STREET_ADDRESS}, {GPE}, {GPE:state} {ZIP_CODE}",
        "ship to {STREET_ADDRESS}\n{GPE}, {GPE:state} {ZIP_CODE}",
        "my address is {STREET_ADDRESS}, {GPE}",
        "we moved to {GPE} ({ZIP_CODE})",
        "send it to {STREET_ADDRESS}, {GPE} {ZIP_CODE}, {GPE:country}",
        "I'm in {GPE}, {GPE:state}",
    ],
    "host": [
        "our server {DOMAIN_NAME} ({IP_ADDRESS}) keeps timing out",
        "ssh to {IP_ADDRESS} fails",
        "the site {DOMAIN_NAME} is down",
        "host {DOMAIN_NAME} resolves to {IP_ADDRESS}",
        "requests from {IP_ADDRESS} get blocked",
        "my blog at {DOMAIN_NAME}",
        "{DOMAIN_NAME} ansible_host={IP_ADDRESS}",
        "DB_HOST={DOMAIN_NAME}",
        'records = ["{IP_ADDRESS}"]',
        "{IP_ADDRESS}   {mac}",
        'name = "{DOMAIN_NAME}"',
        "failed password from {IP_ADDRESS} port 22",
    ],
    "dob": [
        "my date of birth is {DATE_TIME}",
        "DOB {DATE_TIME}",
        "born {DATE_TIME}",
        "I have an appointment on {DATE_TIME:appointment}",
        "booked for {DATE_TIME:appointment}",
    ],
    "age": [
        "I'm {AGE}",
        "I am {AGE} years old",
        "my mum is {AGE}",
        "patient, {AGE}, presents with a cough",
        "she's {AGE}",
        "my nan is {AGE}",
        "he turns {AGE} next month",
        "{PERSON:first} ({AGE})",
        "my {AGE}-year-old",
        "aged {AGE}",
        "I'm {AGE} and",
    ],
    "nrp": ["as a {NRP}", "I'm {NRP}", "my family is {NRP}"],
    "work": [
        "I work at {ORGANIZATION} as a {role}",
        "I'm a {role} at {ORGANIZATION}",
        "I'm {PERSON:full}, {TITLE:job} at {ORGANIZATION}",
        "{PERSON:first} is our {TITLE:job} at {ORGANIZATION}",
        "my kid goes to {ORGANIZATION}",
        "I bank with {ORGANIZATION}",
    ],
    "signature": [
        "\n\nThanks,\n{PERSON:full}",
        "\n\nBest,\n{TITLE} {PERSON:full}\n{PHONE_NUMBER}",
        "\n\n-- \n{PERSON:full}\n{TITLE:job}, {ORGANIZATION}\n{EMAIL_ADDRESS}",
        "\n\nregards, {PERSON}",
        "\n\n{PERSON:full} | {TITLE:job} | {PHONE_NUMBER}",
        "\n\n— {PERSON:full}, {TITLE:job}",
        "\n\n{PERSON:first}\n{TITLE:job}\n{ORGANIZATION}",
        "\n\nCheers,\n{PERSON:first}",
        "\n\n{PERSON:first} x",
    ],
    "form": [
        "\n\nName: {PERSON:full}\nDOB: {DATE_TIME}\nPhone: {PHONE_NUMBER}\nEmail: {EMAIL_ADDRESS}",
        "\n\nName: {PERSON:full}\nAddress: {STREET_ADDRESS}, {GPE}, {GPE:state} {ZIP_CODE}\nSSN: {US_SSN}",
        "\n\nfirst,last,email,phone\n{PERSON},{PERSON},{EMAIL_ADDRESS},{PHONE_NUMBER}",
        "\n\nPatient: {TITLE} {PERSON:full}\nAge: {AGE}\nDOB: {DATE_TIME}\nDL: {US_DRIVER_LICENSE}",
        "\n\nCardholder: {PERSON:full}\nCard: {CREDIT_CARD}\nBilling zip: {ZIP_CODE}",
    ],
}

# Look-alikes: (kind, template); the slots are filled by LOOKALIKE_VALUES and are never entities.
LOOKALIKES: dict[str, list[str]] = {
    "tracking": ["tracking number {ups}", "the parcel ({ups}) hasn't moved", "tracking {usps}"],
    "order": ["order #{order}", "my order {order} never arrived", "order no. {n7}", "re: order {amzn}"],
    "serial": ["serial number {serial}", "S/N {serial}", "the unit's serial is {serial}"],
    "sku": ["SKU {sku}", "item {sku}, qty 3", "part number {part}"],
    "invoice": ["invoice INV-{n6}", "invoice #{n5} for ${price}", "PO {n8}"],
    "ticket": ["ticket #{n5}", "case {n8}", "JIRA {jira}", "incident INC{n7}", "booking reference {pnr}"],
    "version": ["version {ver}", "after upgrading to v{ver}", "build {n4}.{n2}", "node {ver} and npm {ver}"],
    "port": ["port {port}", "listening on :{port}", "localhost:{port}", "127.0.0.1:{port}", "0.0.0.0:{port}"],
    "error": ["error code {err}", "HTTP {http}", "exit status {n2}", "errno {n3}", "0x{hex}"],
    "line": ["line {n3}", "at line {n4}, column {n2}", "{file}:{n3}", "see L{n3}"],
    "price": ["it costs ${price}", "EUR {price}", "{price} a month", "a {n2}% discount"],
    "measurement": ["{n3} mm", "{n2}.{n1} kg", "{n4} sq ft", "{n3} words", "room {n3}", "{n2} mg twice a day"],
    "public_date": [
        "{event}",
        "in {year}",
        "the {year} season",
        "released on {month} {day}, {year}",
        "the {year} elections",
        "in {month} {year}",
        "from {year} to {year2}",
        "{month} {day}",
    ],
    "schedule": [
        "open {hour}:00-{hour2}:00",
        "from {hour}am to {hour2}pm",
        "the {hour}:{minute} train",
        "every Monday at {hour}:{minute}",
        "{hour}:{minute} to {hour2}:{minute}",
        "on the {day}th",
    ],
    "place": [
        "best time to visit {place}",
        "a week in {place}",
        "trains from {place} to {place2}",
        "is {place} expensive",
        "near {place}",
    ],
    "path": [
        "/srv/{file}",
        "src/{file}",
        "http://localhost:{port}/health",
        "imap.gmail.com:993",
        "DATABASE_URL=postgres://localhost:{port}/app",
        "upstream backend {{ server 127.0.0.1:{port}; }}",
        "~/projects/{file}",
        "C:\\Users\\Public\\{file}",
        "{site}/docs",
    ],
    "code": [
        "`server.listen({port})`",
        "`for i in range({n3}):`",
        "`SELECT * FROM orders WHERE id = {n5}`",
        "`chmod 644 {file}`",
        "`docker run -p {port}:{port} app:{ver}`",
    ],
    "public": [
        "what did {figure} say about it",
        "is {company} stock overvalued",
        "how does {company} make money",
        "like {figure} did",
        "see {site}",
        "who was {figure}",
        "compare {figure} and {figure2}",
        "an essay on {figure}'s ideas",
        "why did {figure} matter",
        "a short biography of {figure}",
        "{figure}'s most famous work",
        "{company}'s annual report",
    ],
    "medical": [
        "{drug} {n2} mg",
        "BP {n3}/{n2}",
        "switch from {drug} to {drug2}",
        "HbA1c {n1}.{n1}%",
        "SpO2 {n2}%",
        "{drug} twice daily",
    ],
    "log": [
        '[{day}/Mar/{year}:0{n1}:{minute}:0{n1} +0000] "GET /health HTTP/1.1" {http}',
        "{year}-0{n1}-1{n1}T0{n1}:{minute}:00Z ERROR worker timeout",
        "uptime {n3} days",
        "cron: 0 {hour} * * 1-5",
    ],
    "role": ["my {role} says it's fine", "ask your {role}", "the {role} told me", "as a {role}", "{role} here,"],
    "foreign": ["{foreign}", "{foreign} :)", "{foreign}!"],
    "flight": ["flight {flight}", "gate B{n2}, seat {n2}C", "train {n4} at platform {n1}"],
}


def _lookalike_values(rng: random.Random) -> dict[str, str]:
    d = lambda n: _digits(rng, n)  # noqa: E731
    up = string.ascii_uppercase
    return {
        "ups": f"1Z{d(3)}{rng.choice(up)}{rng.choice(up)}{d(10)}",
        "usps": f"9400 {d(4)} {d(4)} {d(4)} {d(4)} {d(2)}",
        "order": f"{d(3)}-{d(7)}-{d(7)}",
        "amzn": f"{d(3)}-{d(7)}-{d(7)}",
        "serial": f"{rng.choice(up)}{rng.choice(up)}{d(8)}",
        "sku": f"{rng.choice(up)}{rng.choice(up)}-{d(4)}-{rng.choice(up)}",
        "part": f"{d(3)}-{d(2)}-{d(4)}",
        "jira": f"{rng.choice(['OPS', 'WEB', 'DATA', 'PAY'])}-{d(4)}",
        "pnr": "".join(rng.choice(up) for _ in range(6)),
        "ver": f"{rng.randrange(1, 20)}.{rng.randrange(30)}.{rng.randrange(30)}",
        "port": str(
            rng.choice([22, 80, 443, 3000, 5432, 6379, 8000, 8080, 8443, 9200, 27017, rng.randrange(1024, 65535)])
        ),
        "err": rng.choice(["E1102", "0x80070005", "ORA-00942", "ERR_CONNECTION_RESET", f"{d(4)}"]),
        "http": str(rng.choice([400, 401, 403, 404, 409, 429, 500, 502, 503, 504])),
        "hex": d(8),
        "file": rng.choice(["app.py", "main.go", "index.js", "setup.py", "README.md", "config.yaml", "Dockerfile"]),
        "price": f"{rng.randrange(1, 3000)}.{d(2)}",
        "event": rng.choice(_EVENTS),
        "year": str(rng.randrange(1850, 2026)),
        "figure": rng.choice(_PUBLIC_FIGURES),
        "company": rng.choice(_COMPANIES),
        "site": rng.choice(_PUBLIC_SITES),
        "place": rng.choice(_PLACES),
        "place2": rng.choice(_PLACES),
        "year2": str(rng.randrange(1850, 2030)),
        "figure2": rng.choice(_PUBLIC_FIGURES),
        "drug": rng.choice(_DRUGS),
        "drug2": rng.choice(_DRUGS),
        "month": rng.choice(["January", "March", "April", "June", "July", "August", "October", "December"]),
        "day": str(rng.randrange(1, 29)),
        "hour": str(rng.randrange(6, 12)),
        "hour2": str(rng.randrange(1, 11)),
        "minute": rng.choice(["00", "15", "30", "45", "55"]),
        "flight": f"{rng.choice(['BA', 'LH', 'UA', 'AF', 'DL', 'KL'])}{rng.randrange(10, 9999)}",
        "role": rng.choice(_ROLES),
        "foreign": rng.choice(_FOREIGN),
        **{f"n{k}": d(k).lstrip("0") or "7" for k in range(1, 9)},
    }


def _fill(template: str, values: _Values) -> tuple[str, list[dict]]:
    """A carrier template filled with fresh values: (text, spans)."""
    text, spans = "", []
    for literal, etype, kind, _ in string.Formatter().parse(template):  # "{TITLE:job}": field TITLE, spec job
        text += literal
        if etype is None:
            continue
        if etype in _PLAIN:
            text += _PLAIN[etype](values)
            continue
        value = _KIND[kind or etype](values).strip()
        spans.append({"entity_type": _SLOT_TYPE.get(kind, etype), "start": len(text), "end": len(text) + len(value)})
        text += value
    return text, spans


def _join(pieces: list[tuple[str, list[dict]]], rng: random.Random) -> tuple[str, list[dict]]:
    """Pieces joined into one message (a sentence break, a comma or a line break between them), spans shifted."""
    text, spans = "", []
    for i, (piece, piece_spans) in enumerate(pieces):
        if i and not piece.startswith("\n"):
            sep = rng.choice([" ", ". ", ", ", "\n", " - "]) if text and text[-1] not in ".?!\n" else " "
            text = text.rstrip() + sep if sep.strip() else text.rstrip() + " "
        spans += [{**sp, "start": sp["start"] + len(text), "end": sp["end"] + len(text)} for sp in piece_spans]
        text += piece
    return text, spans


def _requests(n: int, seed: int) -> list[str]:
    """Everyday requests without personal data: the intent router's request prompts and the jailbreak data's
    everyday requests (both generated from their own templates)."""
    from loraroute.data.intent_requests import INTENT_LABELS, generate_request_prompts
    from loraroute.data.jailbreak import everyday_requests

    texts = [r["text"] for r in generate_request_prompts(max(1, n // (2 * len(INTENT_LABELS)) + 1), seed)]
    texts += [r["text"] for r in everyday_requests(seed, max(1, n // 2 + 1))]
    # Short requests only: the carriers are what is learnt, and a 600-character request costs five times the
    # training compute of a 120-character one (long messages are the windowing code's job, tested apart).
    texts = [t for t in texts if len(t) <= MAX_REQUEST_CHARS]
    random.Random(seed).shuffle(texts)
    return texts


def _lookalike(rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    kind = kind or rng.choice(sorted(LOOKALIKES))
    return kind, rng.choice(LOOKALIKES[kind]).format(**_lookalike_values(rng))


def _maybe_lower(text: str, rng: random.Random) -> str:
    # Some people type everything in lower case; lower() keeps offsets only when no character changes length.
    return text.lower() if rng.random() < 0.1 and len(text.lower()) == len(text) else text


def chat_pii_records(n: int, seed: int = 0, lookalike_share: float = 0.4) -> list[Record]:
    """``n`` everyday requests carrying one to three carriers of personal data; ``lookalike_share`` of them also
    carry an unlabelled look-alike. Deterministic per ``seed``."""
    rng, values = random.Random(seed), _Values(seed)
    asks = _requests(n, seed)
    names = sorted(CARRIERS)
    out = []
    for i in range(n):
        chosen = rng.sample(names, rng.choice([1, 1, 2, 2, 3]))
        pieces = [_fill(rng.choice(CARRIERS[c]), values) for c in chosen]
        if rng.random() < lookalike_share:
            pieces.append((_lookalike(rng)[1], []))
        rng.shuffle(pieces)
        # Blocks (signatures, forms) go after the request; clauses go before or after it.
        blocks = [p for p in pieces if p[0].startswith("\n")]
        clauses = [p for p in pieces if not p[0].startswith("\n")]
        ask = (asks[i % len(asks)], [])
        parts = clauses + [ask] if rng.random() < 0.5 else [ask] + clauses
        text, spans = _join(parts + blocks, rng)
        rec = {
            "text": _maybe_lower(text, rng),
            "spans": spans,
            "template_id": f"chat:{'+'.join(sorted(chosen))}",
            "source": "chat_pii",
        }
        out.append(validate_record(rec, f"chat PII record {i} ({'+'.join(chosen)})"))
    return out


def lookalike_records(n: int, seed: int = 0) -> list[Record]:
    """``n`` everyday requests with one to three look-alikes and no personal data: every token is ``O``."""
    rng = random.Random(seed + 1)
    asks = _requests(n, seed + 1)
    out = []
    for i in range(n):
        found = [_lookalike(rng) for _ in range(rng.choice([1, 2, 2, 3]))]
        pieces = [(text, []) for _, text in found]
        ask = (asks[i % len(asks)], [])
        text, _ = _join([ask] + pieces if rng.random() < 0.6 else pieces + [ask], rng)
        out.append(
            {
                "text": _maybe_lower(text, rng),
                "spans": [],
                "template_id": f"lookalike:{found[0][0]}",
                "source": "chat_lookalike",
            }
        )
    return out
