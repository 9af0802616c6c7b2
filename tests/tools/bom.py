"""Write a CycloneDX JSON BOM with the official library (cyclonedx-python-lib).

    python bom.py SPEC.json OUT.json

SPEC: {"spec": "1.5" | "1.6" | "1.7", "metadata": COMPONENT or null,
"components": [COMPONENT]}, COMPONENT: {"name", "version"?, "type"
("machine-learning-model" | "data" | "file" | "library"), "bom_ref"?,
"hashes": [[ALG, HEX]], "components": [COMPONENT]}. The BOM is validated
against the CycloneDX JSON schema of its version before it is written.
"""

import json
import sys

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output import OutputFormat, make_outputter
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

VERSIONS = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6, "1.7": SchemaVersion.V1_7}


def component(spec):
    c = Component(
        name=spec["name"],
        version=spec.get("version"),
        type=ComponentType(spec.get("type", "file")),
        bom_ref=spec.get("bom_ref"),
        hashes=[HashType(alg=HashAlgorithm(a), content=h) for a, h in spec.get("hashes", [])],
    )
    for child in spec.get("components", []):
        c.components.add(component(child))
    return c


def main(spec_path, out):
    spec = json.load(open(spec_path))
    bom = Bom()
    if spec.get("metadata"):
        bom.metadata.component = component(spec["metadata"])
    for c in spec.get("components", []):
        bom.components.add(component(c))
    version = VERSIONS[spec["spec"]]
    text = make_outputter(bom, OutputFormat.JSON, version).output_as_string(indent=2)
    errors = JsonStrictValidator(version).validate_str(text)
    if errors:
        sys.exit(f"bom.py: the library wrote an invalid BOM: {errors}")
    open(out, "w").write(text)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
