"""Which vLLM the installed TRL supports, and a one-line refusal of any other before training starts.

TRL pins the vLLM versions it was tested with in its own ``vllm`` extra (TRL 1.16: 0.22 to 0.31) and only
warns at run time about others, after the model has loaded; a vLLM outside that range then fails deep in
weight syncing or generation. The range is read from TRL's installed metadata rather than restated here, so
upgrading TRL moves it. ``reasoner[vllm]`` installs ``trl[vllm]``, which gives a supported vLLM.
"""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from reasoner.errors import UserError

INSTALL_HINT = "pip install 'reasoner[vllm]' (it installs trl[vllm], the vLLM range TRL supports)"


def supported_vllm() -> SpecifierSet:
    """The vLLM versions the installed TRL declares in its ``vllm`` extra (an empty set: TRL names none)."""
    for line in metadata.requires("trl") or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name == "vllm" and requirement.marker is not None and \
                requirement.marker.evaluate({"extra": "vllm"}):
            return requirement.specifier
    return SpecifierSet()


def installed_vllm() -> str | None:
    """The installed vLLM's version string, or None when vLLM is not installed."""
    try:
        return metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return None


def check_vllm(installed: str | None = None, supported: SpecifierSet | None = None) -> None:
    """Refuse a missing vLLM or one outside TRL's range; ``installed``/``supported`` default to this environment.

    Local build labels (``0.30.0+cu128``) and pre-releases compare by their release number, as TRL does.
    """
    installed = installed_vllm() if installed is None else installed
    supported = supported_vllm() if supported is None else supported
    if installed is None:
        raise UserError(f"generation.backend is vllm but vLLM is not installed: {INSTALL_HINT}, "
                        f"or set --generation.backend transformers")
    try:
        release = Version(Version(installed).base_version)
    except InvalidVersion:
        raise UserError(f"vLLM reports the version {installed!r}, which is not a version number: "
                        f"reinstall it with {INSTALL_HINT}") from None
    if str(supported) and not supported.contains(release, prereleases=True):
        raise UserError(f"vLLM {installed} is installed but TRL {metadata.version('trl')} supports vLLM "
                        f"{_describe(supported)}: {INSTALL_HINT}, or set --generation.backend transformers")


def _describe(supported: SpecifierSet) -> str:
    return ",".join(sorted(str(spec) for spec in supported))
