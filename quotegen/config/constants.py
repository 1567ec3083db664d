"""quotegen's fixed names, limits, environment variable names and defaults."""

#: The default model: a LoRA quote adapter shipped in the package, on the SmolLM2-135M-Instruct
#: base that quotegen fetches (pinned) on first use; see ``quotegen.loading.pinned``.
DEFAULT_MODEL_NAME = "quotegen-135m"

#: Name of the small model shipped inside the package (see
#: ``quotegen.loading.references.bundled_model_dir``).
BUNDLED_MODEL_NAME = "quotegen-mini"

#: Seed 2's default prompts, used whenever a prompt is empty.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "life is not fair",
    "she is a warrior",
    "friendship is like",
    "you cannot find light",
)

#: Seeds go up to the largest integer every JSON client reads exactly.
MAX_SEED = 2**53 - 1
#: Prompts in one request at most.
MAX_PROMPTS = 64
MAX_NEW_TOKENS = 2048
MAX_SAMPLES = 16
#: The longest topic ``about`` takes, in characters.
MAX_TOPIC_LENGTH = 60
MAX_STOP_STRINGS = 8
MAX_STOP_LENGTH = 64
MAX_LOGPROBS = 5
#: Name of the daemon thread that reads prompts from stdin (local and client mode); the CLI
#: skips interpreter shutdown while one is alive (see ``quotegen.cli._exit``).
PROMPT_READER = "quotegen-prompts"

ENV_MODEL = "QUOTEGEN_MODEL"
ENV_DEVICE = "QUOTEGEN_DEVICE"
ENV_DTYPE = "QUOTEGEN_DTYPE"
ENV_QUANTIZE = "QUOTEGEN_QUANTIZE"
ENV_DEBUG = "QUOTEGEN_DEBUG"
ENV_API_KEY = "QUOTEGEN_API_KEY"
ENV_SERVER = "QUOTEGEN_SERVER"
ENV_HOST = "QUOTEGEN_HOST"
ENV_PORT = "QUOTEGEN_PORT"
ENV_CACHE = "QUOTEGEN_CACHE"
ENV_THREADS = "QUOTEGEN_THREADS"

DEFAULT_BATCH_SIZE = 32  # rows decoded together; CPU GEMMs stop gaining beyond ~32
MAX_BATCH_SIZE = 256
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

#: CLI help panels of the declared settings.
GENERATION_PANEL = "Generation settings"
LOADING_PANEL = "Model loading"
LIMITS_PANEL = "Batching and limits"
SCRATCH_PANEL = "From scratch"
LORA_PANEL = "LoRA"
