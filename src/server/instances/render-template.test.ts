// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderStrings, renderTemplate, type TemplateData } from "./render-template.js";

const data: TemplateData = {
  Instance: { ID: "web0abc", Kind: "web", Type: "" },
  Server: { RegistrationAddr: "10.0.0.1:8992" },
  Vars: { listen_port: "8080", "dashed-name": "x" },
  Count: 3,
};

describe("renderTemplate", () => {
  it("substitutes field paths", () => {
    const table: Array<[string, string]> = [
      ["no actions", "no actions"],
      ["id={{ .Instance.ID }}", "id=web0abc"],
      ["{{.Instance.ID}}:{{ .Vars.listen_port }}", "web0abc:8080"],
      ["[{{ .Instance.Type }}]", "[]"],
      ["{{ .Vars.dashed-name }}", "x"],
      ["n={{ .Count }}", "n=3"],
      ["a  {{- .Instance.Kind -}}  \n b", "awebb"],
      ["multi\n{{ .Server.RegistrationAddr }}\nline", "multi\n10.0.0.1:8992\nline"],
    ];
    for (const [text, want] of table) assert.equal(renderTemplate(text, data, "t"), want, text);
  });

  it("refuses unknown paths, objects and unsupported actions, naming the template", () => {
    const table: Array<[string, RegExp]> = [
      ["{{ .Instance.Nope }}", /userdata: \{\{ \.Instance\.Nope \}\} names no value/],
      ["{{ .Instance }}", /is not a single value/],
      ["{{ if .Vars.x }}y{{ end }}", /unsupported template action/],
      ["{{ .Vars.listen_port | quote }}", /unsupported template action/],
      ['{{ printf "%s" .Instance.ID }}', /unsupported template action/],
    ];
    for (const [text, want] of table) {
      assert.throws(() => renderTemplate(text, data, "userdata"), {
        code: "invalid_argument",
        message: want,
      });
    }
  });
});

describe("renderStrings", () => {
  it("renders every string leaf and keeps other values and keys", () => {
    const args = {
      ImageId: "ami-{{ .Vars.listen_port }}",
      Tags: [{ Key: "{{ .Instance.ID }}", Value: "v" }],
      Count: 2,
      Flag: true,
      Nothing: null,
    };
    assert.deepEqual(renderStrings(args, data, "args"), {
      ImageId: "ami-8080",
      Tags: [{ Key: "web0abc", Value: "v" }],
      Count: 2,
      Flag: true,
      Nothing: null,
    });
    assert.throws(() => renderStrings({ a: ["{{ .X }}"] }, data, "args"), {
      message: /^args\.a\[0\]:/,
    });
  });
});
