"""The audio formats of OpenAI's `response_format`: names, content types, output sample rates."""

FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
DEFAULT_FORMAT = "mp3"
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}
SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
