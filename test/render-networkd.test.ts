// A section series renders exactly as the sections it stands for, across chunk boundaries.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { entry, section, sectionSeries, sectionsOf, type Unit } from "../src/model.js";
import { renderUnit } from "../src/render-networkd.js";
import { loadTemplates } from "../src/templates.js";

await loadTemplates();

const header = () => ["header line"];

function unitWith(count: number): Unit {
  const values = Array.from({ length: count }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32`);
  return {
    kind: "network",
    fileName: "50-test.network",
    comment: ["unit comment"],
    sections: [
      section("Match", [entry("Name", "wg0-split")]),
      sectionSeries("Route", { before: [entry("Type", "throw")], key: "Destination", values, after: [entry("Table", 10086)] }, ["first only"]),
      section("Link", [entry("RequiredForOnline", false)]),
    ],
  };
}

for (const count of [0, 1, 2, 4095, 4096, 4097, 12289]) {
  test(`a series of ${count} renders as its ${count} sections`, () => {
    const unit = unitWith(count);
    const spelt: Unit = { ...unit, sections: sectionsOf(unit) };
    assert.is(sectionsOf(unit).filter((s) => s.name === "Route").length, count);
    assert.is(renderUnit(unit, header), renderUnit(spelt, header));
    if (count > 0) assert.is(renderUnit(unit, header).split("# first only\n").length, 2);
  });
}

test.run();
