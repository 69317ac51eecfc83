"""The layering every settings group shares: overrides > environment > project file > defaults."""

from typing import Any, Self, TypeVar

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class _FileSource(PydanticBaseSettingsSource):
    """Values for one settings group taken from the project file."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class Group(BaseSettings):
    """A settings group; `from_sources` layers overrides > env > file > defaults."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    @classmethod
    def from_sources(cls, file_values: dict[str, Any], overrides: dict[str, Any]) -> Self:
        file_source = _FileSource(cls, file_values)

        class _Layered(cls):  # type: ignore[valid-type,misc]
            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                return (init_settings, env_settings, file_source)

        layered = _Layered(**{k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(layered.model_dump())


G = TypeVar("G", bound=Group)
