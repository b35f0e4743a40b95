// Starts `imcc lsp` for .imc files. Everything else (diagnostics, hover, completion,
// definition, references, outline, formatting) comes from the server.
const { workspace } = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function activate() {
  const command = workspace.getConfiguration('imcc').get('path') || 'imcc';
  const serverOptions = { command, args: ['lsp'], transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'imc' },
      { scheme: 'untitled', language: 'imc' },
    ],
    synchronize: { fileEvents: workspace.createFileSystemWatcher('**/*.imc') },
  };
  client = new LanguageClient('imcc', 'imcc language server', serverOptions, clientOptions);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
