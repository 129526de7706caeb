// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError } from "../../shared/errors.js";
import { renderTemplate } from "./render-template.js";

const data = {
  Instance: { ID: "web06bgm7733st2576nx5jht4ecjw", Hostname: "web-1", IP4: "10.0.0.5" },
  Cluster: { ID: "prod" },
  Vars: { port: "8080", "with-dash": "x", count: 3 },
};

describe("renderTemplate", () => {
  const cases: Array<{ name: string; template: string; want: string }> = [
    { name: "plain text", template: "no actions here", want: "no actions here" },
    { name: "field", template: "{{ .Instance.ID }}", want: "web06bgm7733st2576nx5jht4ecjw" },
    { name: "no spaces", template: "{{.Vars.port}}", want: "8080" },
    { name: "several", template: "{{ .Instance.Hostname }}:{{ .Vars.port }}", want: "web-1:8080" },
    { name: "number prints", template: "n={{ .Vars.count }}", want: "n=3" },
    { name: "index for non-identifier keys", template: '{{ index .Vars "with-dash" }}', want: "x" },
    { name: "comment", template: "a{{/* note */}}b", want: "ab" },
    { name: "trim before", template: "a  \n {{- .Vars.port }}", want: "a8080" },
    { name: "trim after", template: "{{ .Vars.port -}}  \n b", want: "8080b" },
    {
      name: "dash without space is not a trim marker",
      template: "{{ .Vars.port }}-x",
      want: "8080-x",
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.equal(renderTemplate(tc.template, data), tc.want));
  }

  const errors: Array<{ name: string; template: string; match: RegExp }> = [
    { name: "missing var", template: "{{ .Vars.nope }}", match: /\.Vars\.nope is not defined/ },
    {
      name: "missing top-level",
      template: "{{ .Server.Shard }}",
      match: /\.Server is not defined/,
    },
    { name: "object value", template: "{{ .Instance }}", match: /is an object/ },
    { name: "unclosed", template: "x {{ .Vars.port", match: /unclosed action/ },
    { name: "unsupported", template: "{{ if .Vars.port }}y{{ end }}", match: /unsupported action/ },
    {
      name: "index of missing key",
      template: '{{ index .Vars "nope" }}',
      match: /has no key "nope"/,
    },
    { name: "bad field", template: "{{ .Vars.a-b }}", match: /invalid field reference/ },
  ];
  for (const tc of errors) {
    it(`refuses: ${tc.name}`, () => {
      assert.throws(
        () => renderTemplate(tc.template, data, "web.env"),
        (err: unknown) =>
          err instanceof NstanceError &&
          err.code === "invalid_argument" &&
          err.message.startsWith("template web.env:") &&
          tc.match.test(err.message),
      );
    });
  }

  it("does not look up inherited properties", () => {
    assert.throws(() => renderTemplate("{{ .Vars.constructor }}", data), /not defined/);
  });
});
