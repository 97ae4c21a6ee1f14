"""Built-in text corpora, written for vvbench (no third-party text): short, medium, long, podcast.

- `short`: one-line turns of an assistant or a dialogue (15-120 characters), the ChatTTS-style
  interactive case where time to first audio is what matters.
- `medium`: announcement- and explainer-sized paragraphs (250-600 characters).
- `long`: audiobook-style narrative and essay prose, split into sentences.
- `podcast`: a multi-speaker script, one `Speaker N:` line per turn, the VibeVoice long-form case.

A corpus is a list of units (sentences or script lines); `vvbench.load.mix` builds each request's
text by taking consecutive units from a random start until the requested length is reached,
wrapping around, so any length from one line to a 90-minute script can be drawn from them.
"""

from __future__ import annotations

import re
from functools import cache

SHORT = (
    "Sure, I can help with that.",
    "Your table for four is booked for seven thirty.",
    "The next train to the airport leaves in six minutes.",
    "Turn left at the bakery, then keep going straight.",
    "I did not catch that. Could you say it again?",
    "Good morning! It is twelve degrees and cloudy.",
    "Your parcel was left with the neighbour at number nine.",
    "Done. The lights in the kitchen are off.",
    "Three new messages, one of them from Priya.",
    "That will take about twenty minutes in the oven.",
    "Yes, the pharmacy is open until ten tonight.",
    "Setting a timer for eight minutes, starting now.",
    "Hmm, I think the blue one suits the room better.",
    "Thanks for waiting. An agent will be with you shortly.",
    "The meeting moved to Thursday at two.",
    "Okay! Adding oat milk to the shopping list.",
    "Your balance is forty two euros and fifteen cents.",
    "Please hold the handrail while the doors are closing.",
    "Honestly? I would take the coastal road.",
    "Wait, did you say the blue folder or the green one?",
    "Low battery. Connect the charger within ten minutes.",
    "Flight two one seven is now boarding at gate B twelve.",
    "Great question. Let me check the manual.",
    "No rain expected until Sunday evening.",
    "I found two recipes with lentils and spinach.",
    "Your appointment is confirmed. See you at nine.",
    "Right, so we meet at the fountain at noon?",
    "Playing your evening playlist.",
    "The museum is free on the first Sunday of the month.",
    "Sorry, that item is out of stock in your size.",
)

MEDIUM = (
    ("Welcome aboard the late service to Harbour Street. This train calls at Mill Lane, the "
     "University, and the Old Market. Please keep your luggage off the seats, and let "
     "passengers leave the carriage before you board. The café car is at the front of the train."),
    ("Before you start, check that the tank is filled to the line marked on the side. Press the "
     "round button once to warm the machine. When the light stops blinking, place a cup under "
     "the spout and press the button again. Cleaning takes a minute and happens on its own."),
    ("Tonight's forecast: clear skies inland, with a chance of fog along the estuary after "
     "midnight. Temperatures fall to three degrees in sheltered valleys. Tomorrow begins bright, "
     "but a band of rain reaches the west coast by mid afternoon, with gusty winds on high ground."),
    ("This room was once the printing shop of the town newspaper. The press you see in the "
     "corner could produce two thousand sheets an hour, and it ran every night for forty years. "
     "The type cases along the wall still hold the letters the compositors set by hand."),
    ("To reset your password, open the settings page and choose account security. You will "
     "receive a six digit code by text message. Enter it within ten minutes, then choose a new "
     "password with at least twelve characters. Your other devices will be signed out."),
    ("Our library now lends more than books. Members can borrow a sewing machine, a telescope, "
     "a pressure washer, or a set of camping chairs for up to two weeks. Ask at the front desk, "
     "bring your library card, and please return items clean and complete."),
    ("In the third quarter, the cooperative added two hundred new members and opened its second "
     "shop. Sales of local produce rose by a fifth, while energy costs fell after the solar "
     "panels on the warehouse roof came online in July."),
    ("Knead the dough for ten minutes, until it springs back when pressed. Cover the bowl with a "
     "damp cloth and leave it somewhere warm for an hour. Then fold the edges towards the "
     "middle, turn it over, and shape it into a tight round before the second rise."),
    ("The path to the summit is steep and loose in places. Allow three hours for the round trip, "
     "carry water, and turn back if the cloud comes down. The mountain hut near the top has a "
     "radio for emergencies, but no food or beds."),
    ("Attention please. Due to a signalling fault near the bridge, services towards the coast "
     "are delayed by up to twenty minutes. Replacement buses run from the station forecourt "
     "every quarter of an hour. We apologise for the disruption to your journey."),
    ("Each tile in this floor was fired in the kilns by the river, using clay dug less than a "
     "mile from here. The pattern repeats every twelve tiles, and the makers hid one deliberate "
     "mistake in it. Visitors have been searching for it for almost a century."),
    ("Thank you for calling the community health line. If you need urgent help, hang up and "
     "dial the emergency number. For repeat prescriptions, press one. To speak with a nurse "
     "about symptoms, press two. Calls may be recorded for training."),
)

LONG = (
    ("The lighthouse at Carrick Point was the last in the region to lose its keeper. For sixty "
     "years a family had climbed its hundred and twelve steps every evening at dusk, trimmed the "
     "wick, wound the clockwork that turned the lens, and written the weather into a ledger bound "
     "in green cloth. The ledgers are still there, stacked on a shelf in the oil store. They record "
     "gales that tore slates from the cottage roof, winters when the supply boat could not land for "
     "a month, and one calm August night when a whale surfaced so close to the rocks that the "
     "keeper's daughter could hear it breathe. When the light was automated, an engineer arrived "
     "with a van full of equipment and left the same afternoon. The lamp now switches itself on "
     "with a sensor, and a technician visits twice a year. The cottage stood empty for a long time. "
     "Then the village bought it, repaired the roof, and turned the keeper's kitchen into a small "
     "museum. On summer weekends, volunteers open the door at the foot of the tower and let "
     "visitors climb the steps. Most of them stop halfway to catch their breath, and most of them "
     "say the same thing at the top: that they had not expected the sea to be so loud."),
    ("Bread is one of the oldest partnerships between people and microbes. A starter is nothing "
     "more than flour and water left to sour, yet it holds a whole community of wild yeasts and "
     "bacteria that arrive from the grain, the air and the baker's hands. The yeasts make gas, "
     "which lifts the dough. The bacteria make acids, which give sourdough its tang and help it "
     "keep for days. A baker who feeds the same starter for years is really tending a small, "
     "stable ecosystem, one that adapts to the flour and the temperature of that particular "
     "kitchen. This is why two bakers using the same recipe can produce loaves that taste quite "
     "different. Time matters as much as ingredients. A long, cool rise lets the enzymes in the "
     "flour break starches into sugars, which brown in the oven into a dark, crackling crust. "
     "Hurry the process and the bread is pale and plain. Many bakers say the hardest skill to "
     "learn is not kneading or shaping, but patience: knowing when to leave the dough alone."),
    ("The first railway in the valley was built to carry slate, not people. Horses pulled the "
     "wagons up the gentle gradient to the quarries, and gravity brought them down again, loaded, "
     "with a brakeman riding on the last wagon to keep the speed in check. Passengers came later, "
     "almost by accident. Quarrymen began riding the empty wagons to work, then their families "
     "rode them to market, and eventually the company added a covered carriage and printed a "
     "timetable. For a few decades the line was the busiest thing in the valley. Then the "
     "quarries closed one by one, the road was widened, and the last train ran on a wet Saturday "
     "with a brass band playing on the platform. The rails were lifted and sold for scrap. Today "
     "the old trackbed is a footpath and cycle route. If you walk it slowly you can still find "
     "the signs: a stone bridge far too narrow for a road, a row of cottages that faces the path "
     "instead of the street, and, in the undergrowth near the old junction, a rusted lever that "
     "once changed the points."),
)

PODCAST = (
    "Speaker 1: Welcome back to Signal and Noise, the show about the things that keep a small town running. I'm here with Dana and Theo.",
    "Speaker 2: Hi everyone. Today we're talking about community radio, which is close to my heart.",
    "Speaker 3: And close to my ears, since I spent three winters fixing our transmitter.",
    "Speaker 1: Let's start there. Theo, what does it actually take to get a station on the air?",
    "Speaker 3: Less than people think, and more than they hope. A licence, a mast, a transmitter, and a room that doesn't echo.",
    "Speaker 2: The room was the hard part for us. We started in a church hall with a very tall ceiling.",
    "Speaker 1: So every interview sounded like it was recorded in a cathedral.",
    "Speaker 2: Exactly. We hung old curtains and carpet offcuts on every wall. It looked terrible and sounded wonderful.",
    "Speaker 3: Then the transmitter failed during the first storm of the year, of course.",
    "Speaker 1: What happened?",
    "Speaker 3: Water got into a connector on the mast. The signal dropped, came back, dropped again. I climbed up in the rain with a roll of tape.",
    "Speaker 2: We kept broadcasting the whole time, by the way. Nobody at home knew anything was wrong.",
    "Speaker 1: That's the part I find fascinating. Listeners only notice when the sound stops.",
    "Speaker 3: Right. A little hiss, they forgive. A gap of two seconds, and the phone starts ringing.",
    "Speaker 2: Which is true of any audio, really. People are remarkably patient with quality and completely impatient with silence.",
    "Speaker 1: Let's talk about the volunteers. Who actually presents the shows?",
    "Speaker 2: Everyone. A retired headteacher does the Sunday morning folk hour. Two teenagers run a show about video game soundtracks.",
    "Speaker 3: And a fisherman reads the tide times every morning, live, from his boat when the weather allows.",
    "Speaker 1: From the boat?",
    "Speaker 3: He phones in. The line is awful, but the listeners love it. It's the most popular five minutes of the day.",
    "Speaker 2: That's the thing about local radio. The polish matters less than the feeling that someone nearby is talking to you.",
    "Speaker 1: How do you pay for all this?",
    "Speaker 2: Small grants, a quiz night every month, and adverts from the shops on the high street. The bakery has sponsored the weather for six years.",
    "Speaker 3: Their jingle is very catchy. I apologise to anyone who has it stuck in their head now.",
    "Speaker 1: What would you tell someone who wants to start a station in their own town?",
    "Speaker 3: Buy good connectors. Seriously. And learn where the fuse box is before your first live show.",
    "Speaker 2: Find ten people who each care about one thing, and give each of them an hour a week. The schedule fills itself.",
    "Speaker 1: And record everything. Some of our oldest tapes are now the only recordings of people the town has lost.",
    "Speaker 2: That's true. We played an interview with the old harbour master at his memorial. The whole room went quiet.",
    "Speaker 3: It's strange to think a bit of wire and a mast can hold on to a voice like that.",
    "Speaker 1: Let's take a short break. When we come back, the great debate: should the station play music after midnight, or just the shipping forecast?",
    "Speaker 2: I already know which side Theo is on.",
    "Speaker 3: The shipping forecast is music. I will not be taking questions.",
    "Speaker 1: And we're back. Dana, make the case for music.",
    "Speaker 2: People who can't sleep want company, not wind speeds for sea areas they will never visit.",
    "Speaker 3: But the forecast is company. It's the same calm voice, in the same order, every night. That's the whole point.",
    "Speaker 1: I think we've found the one topic this team will never agree on.",
    "Speaker 2: We'll put it to a listener vote. Text your choice to the studio line before Friday.",
    "Speaker 1: That's all for this week. Thanks to Dana and Theo, and thanks to you for listening.",
    "Speaker 3: And check your connectors.",
)

CORPORA = {"short": SHORT, "medium": MEDIUM, "long": LONG, "podcast": PODCAST}

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@cache
def units(name: str) -> tuple[str, ...]:
    """The units a corpus' texts are built from: sentences for prose, lines for the podcast script."""
    if name not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; built-in corpora: {', '.join(CORPORA)}")
    if name in ("podcast", "short"):
        return CORPORA[name]
    return tuple(s for passage in CORPORA[name] for s in _SENTENCE.split(passage) if s)


def units_from_text(text: str) -> tuple[str, ...]:
    """Units of a user's text file: its non-empty lines when it has `Speaker N:` lines, else sentences."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and sum(1 for line in lines if re.match(r"^Speaker \d+:", line)) >= len(lines) // 2:
        return tuple(lines)
    return tuple(s for s in _SENTENCE.split(" ".join(lines)) if s)
