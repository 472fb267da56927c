"use client";
// Plain-HTML stand-ins for the components the dashboard imports from @crunch-ui/core.
import React from "react";
import { Controller, FormProvider } from "react-hook-form";
import { flexRender, getCoreRowModel, useReactTable } from "@tanstack/react-table";

const h = React.createElement;
const STYLE = {
  card: { border: "1px solid #555", borderRadius: 6, padding: 12, margin: "8px 0", background: "#1c1c1c" },
  table: { borderCollapse: "collapse", width: "100%", fontSize: 13 },
  cell: { border: "1px solid #444", padding: "4px 8px", textAlign: "left" },
  badge: { border: "1px solid #777", borderRadius: 8, padding: "0 6px", fontSize: 12 },
};

// Drop the props a DOM element would warn about.
function domProps(props) {
  const { asChild, displayCorners, variant, size, delayDuration, control, ...rest } = props;
  return rest;
}
const tag = (name, style) =>
  function Stub({ children, style: own, ...props }) {
    return h(name, { ...domProps(props), style: { ...style, ...own } }, children);
  };
// Containers that only show their children (dialogs and sheets stay closed: render the trigger).
const passthrough = function Pass({ children }) {
  return h(React.Fragment, null, children);
};
const hidden = function Hidden() {
  return null;
};

export const Card = tag("section", STYLE.card);
export const CardHeader = tag("header");
export const CardTitle = tag("h3", { margin: "4px 0" });
export const CardContent = tag("div");
export const Badge = tag("span", STYLE.badge);
export const Button = function Button({ children, asChild, ...props }) {
  if (asChild) return h(React.Fragment, null, children);
  return h("button", { type: "button", ...domProps(props) }, children);
};
export const Input = React.forwardRef(function Input(props, ref) {
  return h("input", { ref, ...domProps(props) });
});
export const Checkbox = function Checkbox({ checked, onCheckedChange, ...props }) {
  return h("input", { type: "checkbox", checked: !!checked, onChange: (e) => onCheckedChange?.(e.target.checked), ...domProps(props) });
};
export const Switch = Checkbox;
export const Spinner = function Spinner() {
  return h("span", { "data-spinner": true }, "…");
};
export const PulseRing = function PulseRing({ active, className }) {
  return h("span", { className, title: active ? "active" : "inactive", style: { color: active ? "#3c3" : "#777" } }, "\u25cf");
};
export const Avatar = tag("span", { display: "inline-block", width: 18, height: 18, borderRadius: 9, background: "#555", textAlign: "center", fontSize: 11 });
export const AvatarFallback = tag("span");
export const Alert = tag("div", STYLE.card);
export const AlertDescription = tag("div");
export const Legals = hidden;
export const Toaster = hidden;
export function toast() {}

export const Table = tag("table", STYLE.table);
export const TableHeader = tag("thead");
export const TableBody = tag("tbody");
export const TableRow = tag("tr");
export const TableHead = tag("th", STYLE.cell);
export const TableCell = tag("td", STYLE.cell);

export function DataTable({ data, columns, loading }) {
  const table = useReactTable({ data: data ?? [], columns: columns ?? [], getCoreRowModel: getCoreRowModel() });
  if (loading) return h(Spinner);
  return h(
    "table",
    { style: STYLE.table, "data-testid": "data-table" },
    h("thead", null, table.getHeaderGroups().map((group) =>
      h("tr", { key: group.id }, group.headers.map((header) =>
        h("th", { key: header.id, style: STYLE.cell }, flexRender(header.column.columnDef.header, header.getContext())))))),
    h("tbody", null, table.getRowModel().rows.map((row) =>
      h("tr", { key: row.id }, row.getVisibleCells().map((cell) =>
        h("td", { key: cell.id, style: STYLE.cell }, flexRender(cell.column.columnDef.cell, cell.getContext()))))))
  );
}

export const Tooltip = passthrough;
export const TooltipProvider = passthrough;
export const TooltipTrigger = passthrough;
export const TooltipContent = hidden;
export const Popover = passthrough;
export const PopoverTrigger = passthrough;
export const PopoverContent = hidden;
export const Dialog = passthrough;
export const DialogTrigger = passthrough;
export const DialogContent = hidden;
export const DialogHeader = hidden;
export const DialogTitle = hidden;
export const DialogDescription = hidden;
export const Sheet = passthrough;
export const SheetTrigger = passthrough;
export const SheetContent = hidden;
export const SheetHeader = hidden;
export const SheetTitle = hidden;
export const SheetDescription = hidden;
export const AlertDialog = passthrough;
export const AlertDialogTrigger = passthrough;
export const AlertDialogContent = hidden;
export const AlertDialogHeader = hidden;
export const AlertDialogFooter = hidden;
export const AlertDialogTitle = hidden;
export const AlertDialogDescription = hidden;
export const AlertDialogAction = hidden;
export const AlertDialogCancel = hidden;
export const Accordion = tag("div");
export const AccordionItem = tag("div");
export const AccordionTrigger = tag("div", { fontWeight: "bold" });
export const AccordionContent = tag("div");
export const Tabs = tag("div");
export const TabsList = tag("div");
export const TabsTrigger = tag("span", { marginRight: 8 });
export const TabsContent = tag("div");
export const ToggleGroup = tag("div");
export const ToggleGroupItem = tag("span", { marginRight: 8 });
export const Select = passthrough;
export const SelectTrigger = tag("span");
export const SelectValue = function SelectValue({ placeholder }) {
  return h("span", null, placeholder ?? "");
};
export const SelectContent = hidden;
export const SelectItem = hidden;

export function Form({ children, ...methods }) {
  return h(FormProvider, methods, h(React.Fragment, null, children));
}
export function FormField(props) {
  return h(Controller, props);
}
export const FormItem = tag("div", { margin: "6px 0" });
export const FormLabel = tag("label", { display: "block", fontSize: 12 });
export const FormControl = passthrough;
export const FormMessage = hidden;
