"""Voice pipelines: speech in → your workflow → speech out, streamed, online or offline.

```python
from fastvoice import voice
pipeline = voice.Pipeline(workflow=voice.SimpleWorkflow(lambda text: [f"You said {text}"]))
result = await pipeline.run(voice.AudioInput(wav_bytes))
pcm = await result.collect_audio()  # PCM16 mono 24 kHz
```
"""

from fastvoice.voice.agent_workflow import AgentWorkflow, AgentWorkflowError
from fastvoice.voice.config import Config, STTSettings, TTSSettings, TurnDetection
from fastvoice.voice.events import (
    NoSpeechError,
    ProviderUnavailableError,
    STTError,
    TTSError,
    UnknownVoiceError,
    VoiceError,
    VoiceStreamEvent,
    VoiceStreamEventAudio,
    VoiceStreamEventError,
    VoiceStreamEventLifecycle,
    VoiceStreamEventTranscript,
)
from fastvoice.voice.input import AudioInput, StreamedAudioInput
from fastvoice.voice.pipeline import Pipeline
from fastvoice.voice.providers import StreamedTranscription, STTModel, TTSModel, VoiceModelProvider
from fastvoice.voice.result import StreamedAudioResult, Turn
from fastvoice.voice.text import SentenceSplitter, split_sentences
from fastvoice.voice.workflow import SimpleWorkflow, Workflow

__all__ = [
    "AgentWorkflow",
    "AgentWorkflowError",
    "AudioInput",
    "Config",
    "NoSpeechError",
    "Pipeline",
    "ProviderUnavailableError",
    "STTError",
    "STTModel",
    "STTSettings",
    "SentenceSplitter",
    "SimpleWorkflow",
    "StreamedAudioInput",
    "StreamedAudioResult",
    "StreamedTranscription",
    "TTSError",
    "TTSModel",
    "TTSSettings",
    "Turn",
    "TurnDetection",
    "UnknownVoiceError",
    "VoiceError",
    "VoiceModelProvider",
    "VoiceStreamEvent",
    "VoiceStreamEventAudio",
    "VoiceStreamEventError",
    "VoiceStreamEventLifecycle",
    "VoiceStreamEventTranscript",
    "Workflow",
    "split_sentences",
]
