// Validates YAML files as an editor does: with yaml-language-server's own
// language service, each file's schema taken from its
// "# yaml-language-server: $schema=..." modeline. Prints, as JSON, each
// file's diagnostics (1-based line and message). Used by
// crosscheck/yls_test.go; needs yaml-language-server installed where
// require finds it (NODE_PATH).
'use strict';
const fs = require('fs');
const path = require('path');
const url = require('url');

const ylsDir = path.dirname(require.resolve('yaml-language-server/package.json'));
const { getLanguageService } = require(path.join(ylsDir, 'out/server/src/languageservice/yamlLanguageService'));
// A dependency of yaml-language-server, found beside it.
const { TextDocument } = require(require.resolve('vscode-languageserver-textdocument', { paths: [ylsDir] }));

const ls = getLanguageService({
  schemaRequestService: async (uri) => fs.readFileSync(url.fileURLToPath(uri), 'utf8'),
  workspaceContext: {
    resolveRelativePath: (rel, resource) =>
      url.pathToFileURL(path.resolve(path.dirname(url.fileURLToPath(resource)), rel)).href,
  },
});
ls.configure({ validate: true, hover: true, completion: true, schemas: [] });

(async () => {
  const out = [];
  for (const file of process.argv.slice(2)) {
    const uri = url.pathToFileURL(path.resolve(file)).href;
    const doc = TextDocument.create(uri, 'yaml', 1, fs.readFileSync(file, 'utf8'));
    const diags = await ls.doValidation(doc, false);
    out.push({ file, diagnostics: diags.map((d) => ({ line: d.range.start.line + 1, message: d.message })) });
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
